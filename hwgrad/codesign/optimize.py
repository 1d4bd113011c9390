"""Augmented-Lagrangian Adam descent from many starts in parallel, with atomic checkpoints."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .feasibility import worst_violation
from .problem import Problem


@dataclasses.dataclass
class RunResult:
    """Outcome of :func:`optimize` (relaxed, continuous designs).

    Attributes:
      z: ``(S, D)`` final transformed variables, one row per start.
      objective: ``(S,)`` objective metric value (first objective metric) per start.
      violation: ``(S,)`` worst normalised constraint value ``max(0, g)``.
      best: index of the best start (feasible first, then lowest ``J``).
      best_values: design values of the best start.
      trajectory: rows ``(step, start, J, objective, violation, lagrangian)``.
      nan_steps: steps at which a start's loss or gradient was not finite (skipped).
      evaluations: gradient evaluations (one per start per step).
      wall_s: wall time of the descent (including compilation).
    """

    z: Any
    objective: Any
    violation: Any
    best: int
    best_values: dict
    trajectory: list
    nan_steps: int
    evaluations: int
    wall_s: float
    limits: Any = None


def _start_points(problem: Problem, starts: int, seed: int, spread: float):
    """Start 0 is the base design; others are uniform in the transformed box mixed with it."""
    rng = np.random.default_rng(seed)
    lo, hi = np.asarray(problem.z_lower), np.asarray(problem.z_upper)
    z0 = np.asarray(problem.project(problem.z0))
    u = lo + (hi - lo) * rng.uniform(size=(starts, problem.dim))
    z = (1 - spread) * z0 + spread * u
    z[0] = z0
    return jnp.asarray(z)


def _lr_at(t, lr, total, alpha=0.05):
    """Cosine decay from ``lr`` to ``alpha lr`` over ``total`` steps."""
    frac = jnp.minimum(t / jnp.maximum(total, 1.0), 1.0)
    return lr * (alpha + (1 - alpha) * 0.5 * (1 + jnp.cos(jnp.pi * frac)))


def _make_fns(problem: Problem, inner_steps: int):
    """Compiled chunk of ``inner_steps`` descent steps, cached on the problem so that runs with
    other step counts, learning rates, limits or penalties (but the same number of starts)
    reuse one compiled program."""
    key = ("chunk", inner_steps)
    if key in problem._cache:
        return problem._cache[key]
    adam = optax.scale_by_adam()

    def lagrangian(z, lam, mu, limits):
        m = problem.metrics_z(z)
        J = problem.objective_value(m)
        g = problem.constraint_values(m, limits)
        pen = jnp.sum(jnp.maximum(0.0, lam + mu * g) ** 2 - lam**2) / (2.0 * mu)
        first = problem.objective.weights[0][0]
        return J + pen, (J, m[first], g)

    vg = jax.vmap(jax.value_and_grad(lagrangian, has_aux=True))

    def step(carry, _):
        z, z_ok, opt_state, lam, mu, limits, nan_steps, t, lr, total = carry
        (loss, (J, obj, g)), grad = vg(z, lam, mu, limits)
        finite = jnp.isfinite(loss) & jnp.all(jnp.isfinite(grad), axis=-1)
        # the optimiser never sees a NaN: a start whose loss or gradient is not finite skips
        # the Adam update and steps halfway back to its last finite point
        grad = jnp.where(finite[:, None], grad, 0.0)
        updates, new_state = adam.update(grad, opt_state, z)
        f2 = finite[:, None]
        new_z = jnp.where(f2, problem.project(z - _lr_at(t, lr, total) * updates), 0.5 * (z + z_ok))
        z_ok = jnp.where(f2, z, z_ok)
        new_state = jax.tree_util.tree_map(
            lambda new, old: jnp.where(f2, new, old) if new.ndim == 2 else new, new_state, opt_state
        )
        g = jnp.where(jnp.isfinite(g), g, 0.0)
        viol = jnp.max(jnp.maximum(g, 0.0), axis=-1, initial=0.0)
        carry = (new_z, z_ok, new_state, lam, mu, limits, nan_steps + jnp.sum(~finite), t + 1.0, lr, total)
        return carry, (J, obj, viol, g)

    @jax.jit
    def chunk(carry, prev_viol, rho, mu_max):
        carry, (J, obj, viol, g) = jax.lax.scan(step, carry, None, length=inner_steps)
        z, z_ok, opt_state, lam, mu, limits, nan_steps, t, lr, total = carry
        # multiplier update from the constraints at the last inner step
        g_last = g[-1]
        new_lam = jnp.maximum(0.0, lam + mu[:, None] * g_last)
        grow = viol[-1] > 0.25 * prev_viol
        new_mu = jnp.where(grow, jnp.minimum(mu * rho, mu_max), mu)
        carry = (z, z_ok, opt_state, new_lam, new_mu, limits, nan_steps, t, lr, total)
        return carry, viol[-1], (J, obj, viol)

    problem._cache[key] = (adam, chunk)
    return adam, chunk


_CHECKPOINT_KEYS = (
    "z",
    "z_ok",
    "lam",
    "mu",
    "prev_viol",
    "limits",
    "nan_steps",
    "trajectory",
    "chunks_done",
    "fingerprint",
)


def _checkpoint_digest(arrays: dict) -> str:
    """SHA-256 over every array of a checkpoint (name, dtype, shape, bytes), the study
    fingerprint included."""

    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _save_checkpoint(path: Path, state: dict) -> None:
    """Atomic and checked: a temporary file in the same directory (with the SHA-256 of its
    payload), fsync, ``os.replace``, directory fsync."""
    from ..files import fsync_dir

    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.asarray(v) for k, v in state.items()}
    arrays["checksum"] = np.asarray(_checkpoint_digest(arrays))
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _load_checkpoint(path: Path) -> dict:
    """A checkpoint written by :func:`_save_checkpoint`, or a one-line ``ValueError`` naming
    the file (truncated, empty, not a checkpoint, edited, or missing fields)."""
    fix = "delete it (or choose another --out) and rerun without --resume"
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except OSError as exc:
        raise ValueError(f"checkpoint {path}: cannot read ({exc.strerror or exc}); {fix}") from None
    except Exception as exc:  # noqa: BLE001 - zip / npy errors of a damaged file, pickled objects
        kind = "holds Python objects" if "pickle" in str(exc) else "is damaged or not an hwgrad checkpoint"
        raise ValueError(f"checkpoint {path} {kind} ({type(exc).__name__}); {fix}") from None
    missing = [k for k in (*_CHECKPOINT_KEYS, "checksum") if k not in arrays]
    if missing:
        raise ValueError(
            f"checkpoint {path} lacks {', '.join(missing)}: damaged or not an hwgrad checkpoint; {fix}"
        )
    digest = str(arrays.pop("checksum"))
    if _checkpoint_digest(arrays) != digest:
        raise ValueError(f"checkpoint {path} fails its checksum (edited or corrupted); {fix}")
    return arrays


def optimize(
    problem: Problem,
    steps: int = 400,
    starts: int = 4,
    *,
    lr: float = 0.05,
    seed: int = 0,
    spread: float = 0.5,
    inner_steps: int = 50,
    mu0: float = 10.0,
    rho: float = 3.0,
    mu_max: float = 1e4,
    limits=None,
    z_init=None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 100,
    resume: bool = False,
    progress: bool = False,
    feasibility_tol: float | None = None,
) -> RunResult:
    """Augmented-Lagrangian Adam descent from ``starts`` points in parallel (``vmap``).

    Args:
      problem: the :class:`Problem`.
      steps: optimiser steps (rounded up to a multiple of ``inner_steps``).
      starts: parallel starts; start 0 is the base design, the others random in the box.
      lr: peak Adam learning rate in transformed units (0.05 = 5 % per step in log space),
        cosine-decayed to 5 % of itself over ``steps``.
      inner_steps: steps between multiplier updates (the augmented-Lagrangian schedule).
      mu0, rho, mu_max: initial penalty, its growth factor and its cap.
      limits: ``(S, n_constraints)`` or ``(n_constraints,)`` constraint limits (default: the
        problem's); a batch of limits traces a Pareto front.
      z_init: ``(S, D)`` explicit start points (transformed).
      checkpoint: ``.npz`` path written atomically every ``checkpoint_every`` steps (rounded
        up to a multiple of ``inner_steps``) and on Ctrl-C; ``resume`` continues from it and
        reaches the same result as an uninterrupted run.
      progress: show a tqdm bar (step, objective, violation).
      feasibility_tol: violation up to which a start counts as feasible (default: the
        problem's ``feasibility_rtol``, the one rule of :mod:`hwgrad.codesign.feasibility`).
    """
    t_start = time.perf_counter()
    if feasibility_tol is None:
        feasibility_tol = problem.feasibility_rtol
    n_chunks = max(1, math.ceil(steps / inner_steps))
    steps = n_chunks * inner_steps
    every = max(1, math.ceil(checkpoint_every / inner_steps))
    z = _start_points(problem, starts, seed, spread) if z_init is None else jnp.asarray(z_init)
    S = z.shape[0]
    limits = problem.default_limits() if limits is None else jnp.asarray(limits, dtype=float)
    limits = jnp.broadcast_to(limits, (S, limits.shape[-1]))
    adam, chunk = _make_fns(problem, inner_steps)
    opt_state = adam.init(z)
    n_con = len(problem.constraint_names)
    lam = jnp.zeros((S, n_con))
    mu = jnp.full((S,), float(mu0))
    prev_viol = jnp.full((S,), jnp.inf)
    nan_steps = jnp.asarray(0)
    z_ok = z
    traj = np.zeros((0, S, 3))
    done = 0
    fp = problem.fingerprint() + f"-{steps}-{S}-{lr}-{seed}-{spread}-{inner_steps}-{mu0}-{rho}-{mu_max}"
    ckpt = Path(checkpoint) if checkpoint is not None else None
    leaves, treedef = jax.tree_util.tree_flatten(opt_state)
    if resume and ckpt is not None and ckpt.exists():
        data = _load_checkpoint(ckpt)
        if str(data["fingerprint"]) != fp:
            raise ValueError(
                f"checkpoint {ckpt} was written by a different study or settings; "
                "rerun without --resume (or with the original --steps) to start over"
            )
        bad = [k for k in ("z", "z_ok") if data[k].shape != z.shape]
        bad += [
            f"opt_{i}" for i, x in enumerate(leaves) if data.get(f"opt_{i}", np.zeros(0)).shape != np.shape(x)
        ]
        done = int(data["chunks_done"]) if data["chunks_done"].shape == () else -1
        if not 0 <= done <= n_chunks:
            bad.append("chunks_done")
        elif data["trajectory"].shape != (done * inner_steps, S, 3):
            bad.append("trajectory")
        if bad:
            raise ValueError(
                f"checkpoint {ckpt}: {', '.join(bad)} do not fit this study (damaged); delete it and rerun "
                "without --resume"
            )
        z, z_ok, lam, mu, prev_viol = (jnp.asarray(data[k]) for k in ("z", "z_ok", "lam", "mu", "prev_viol"))
        limits = jnp.asarray(data["limits"])
        nan_steps = jnp.asarray(data["nan_steps"])
        opt_state = jax.tree_util.tree_unflatten(
            treedef, [jnp.asarray(data[f"opt_{i}"]) for i in range(len(leaves))]
        )
        traj = data["trajectory"]

    def state_dict():
        lv = jax.tree_util.tree_leaves(opt_state)
        return dict(
            z=z,
            z_ok=z_ok,
            lam=lam,
            mu=mu,
            prev_viol=prev_viol,
            limits=limits,
            nan_steps=nan_steps,
            trajectory=traj,
            chunks_done=done,
            fingerprint=np.asarray(fp),
            **{f"opt_{i}": x for i, x in enumerate(lv)},
        )

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=done * inner_steps, desc="codesign", unit="step", dynamic_ncols=True)
    try:
        while done < n_chunks:
            carry = (
                z,
                z_ok,
                opt_state,
                lam,
                mu,
                limits,
                nan_steps,
                jnp.asarray(float(done * inner_steps)),
                jnp.asarray(float(lr)),
                jnp.asarray(float(steps)),
            )
            carry, pv_n, (J, obj, viol) = chunk(carry, prev_viol, float(rho), float(mu_max))
            rows = np.stack([np.asarray(J), np.asarray(obj), np.asarray(viol)], axis=-1)
            # commit the chunk only once it is complete (Ctrl-C in between keeps the old state)
            z, z_ok, opt_state, lam, mu, _, nan_steps = carry[:7]
            prev_viol = pv_n
            traj = np.concatenate([traj, rows], axis=0)
            done += 1
            if bar is not None:
                last = rows[-1]
                k = int(np.argmin(np.where(last[:, 2] <= feasibility_tol, last[:, 0], 1e6 + last[:, 2])))
                bar.update(inner_steps)
                bar.set_postfix(objective=f"{last[k, 1]:.4g}", violation=f"{last[:, 2].min():.2e}")
            if ckpt is not None and (done % every == 0 or done == n_chunks):
                _save_checkpoint(ckpt, state_dict())
    except KeyboardInterrupt:
        if ckpt is not None:
            _save_checkpoint(ckpt, state_dict())
        raise
    finally:
        if bar is not None:
            bar.close()

    m = problem.batch_metrics(z)
    J = np.asarray(jax.vmap(problem.objective_value)(m))
    if not np.all(np.isfinite(J)):  # a start that ended on a non-finite point returns its last finite one
        z = jnp.where(jnp.asarray(np.isfinite(J))[:, None], z, z_ok)
        m = problem.batch_metrics(z)
        J = np.asarray(jax.vmap(problem.objective_value)(m))
    g = np.asarray(jax.vmap(problem.constraint_values)(m, limits))
    viol = worst_violation(g)
    key = np.where(viol <= feasibility_tol, J, 1e6 + viol)
    key = np.where(np.isfinite(key), key, np.inf)
    best = int(np.argmin(key))
    first = problem.objective.weights[0][0]
    trajectory = [
        (i, s, *map(float, traj[i, s, :3])) for i in range(traj.shape[0]) for s in range(traj.shape[1])
    ]
    return RunResult(
        z=z,
        objective=np.asarray(m[first]),
        violation=viol,
        best=best,
        best_values=problem.from_z(z[best]),
        trajectory=trajectory,
        nan_steps=int(nan_steps),
        evaluations=int(traj.shape[0] * S),
        wall_s=time.perf_counter() - t_start,
        limits=limits,
    )
