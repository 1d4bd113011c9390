"""Black-box baselines on the same problem: random search and CMA-ES, and the cost of one
gradient evaluation in forward-pass equivalents (the counting rule that compares them)."""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from .problem import Problem


def _merit_fn(problem: Problem, batch: int, tol: float, penalty: float):
    limits = problem.default_limits()

    def one(z):
        m = problem.metrics_z(z)
        J = problem.objective_value(m)
        g = problem.constraint_values(m, limits)
        v = jnp.max(jnp.maximum(g, 0.0), initial=0.0)
        obj = m[problem.objective.weights[0][0]]
        merit = J + penalty * jnp.sum(jnp.maximum(g, 0.0))
        ok = jnp.isfinite(merit)
        return jnp.where(ok, merit, jnp.inf), jnp.where(ok & (v <= tol), obj, jnp.inf)

    return jax.jit(lambda zb: jax.lax.map(one, zb, batch_size=batch))


def gradient_cost_in_forwards(problem: Problem, n: int = 64, repeats: int = 5) -> float:
    """Wall time of one gradient evaluation over that of one forward evaluation (dimensionless).

    The counting rule of every gradient-vs-black-box comparison (``benchmarks/bench_codesign.py``,
    ``experiments/a13_codesign.py``): one forward evaluation of the model (objective and
    constraints) = 1; one gradient evaluation (value and gradient of the same scalar) = this
    factor. Measured on this machine by timing the compiled, batched (``vmap`` over ``n``
    copies of the start point) forward and gradient programs, best of ``repeats`` runs each
    (compilation excluded). Typically 10-15 on a CPU.
    """
    limits = problem.default_limits()
    z = jnp.repeat(problem.project(problem.z0)[None], n, 0)

    def fwd(q):
        m = problem.metrics_z(q)
        return problem.objective_value(m) + jnp.sum(problem.constraint_values(m, limits))

    f = jax.jit(jax.vmap(fwd))
    g = jax.jit(jax.vmap(jax.value_and_grad(fwd)))
    jax.block_until_ready(f(z))
    jax.block_until_ready(g(z))

    def best_of(fn):
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            jax.block_until_ready(fn(z))
            ts.append(time.perf_counter() - t)
        return min(ts)

    return best_of(g) / best_of(f)


def random_search(
    problem: Problem, evaluations: int, *, seed: int = 0, batch: int = 4096, tol: float | None = None
):
    """Uniform random search in the transformed box.

    Returns ``(best_values, history)`` where ``history[k]`` is the best feasible objective
    after ``k + 1`` evaluations (``inf`` until a feasible point is found).
    """
    rng = np.random.default_rng(seed)
    tol = problem.feasibility_rtol if tol is None else tol
    f = _merit_fn(problem, min(batch, 512), tol, 100.0)
    lo, hi = np.asarray(problem.z_lower), np.asarray(problem.z_upper)
    hist, best, best_z = [], np.inf, np.asarray(problem.z0)
    done = 0
    while done < evaluations:
        n = min(batch, evaluations - done)
        zb = lo + (hi - lo) * rng.uniform(size=(batch, problem.dim))
        _, obj = f(jnp.asarray(zb))
        obj = np.asarray(obj)[:n]
        k = int(np.argmin(obj))
        if obj[k] < best:
            best, best_z = float(obj[k]), zb[k]
        hist.append(np.minimum.accumulate(np.minimum(obj, hist[-1][-1] if hist else np.inf)))
        done += n
    return problem.from_z(jnp.asarray(best_z)), np.concatenate(hist)


def cma_es(
    problem: Problem,
    evaluations: int,
    *,
    seed: int = 0,
    sigma0: float = 0.3,
    popsize: int | None = None,
    tol: float | None = None,
    penalty: float = 100.0,
    x0=None,
):
    """(mu/mu_w, lambda)-CMA-ES (Hansen's tutorial, default parameters) on the box rescaled to
    [0, 1]^D, minimising ``J + penalty * sum max(0, g)``; infeasible boundary samples are
    clipped. Returns ``(best_values, history)`` like `random_search`.
    """
    rng = np.random.default_rng(seed)
    n = problem.dim
    lam = popsize or 4 + int(3 * math.log(n))
    mu = lam // 2
    w = np.log(mu + 0.5) - np.log(np.arange(1, mu + 1))
    w /= w.sum()
    mueff = 1 / np.sum(w**2)
    cc = (4 + mueff / n) / (n + 4 + 2 * mueff / n)
    cs = (mueff + 2) / (n + mueff + 5)
    c1 = 2 / ((n + 1.3) ** 2 + mueff)
    cmu = min(1 - c1, 2 * (mueff - 2 + 1 / mueff) / ((n + 2) ** 2 + mueff))
    damps = 1 + 2 * max(0, math.sqrt((mueff - 1) / (n + 1)) - 1) + cs
    chin = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n**2))
    lo, hi = np.asarray(problem.z_lower), np.asarray(problem.z_upper)
    start = np.asarray(problem.project(problem.z0)) if x0 is None else np.asarray(x0)
    mean = (start - lo) / (hi - lo)
    sigma, pc, ps = sigma0, np.zeros(n), np.zeros(n)
    B, D, C = np.eye(n), np.ones(n), np.eye(n)
    eigen_every = max(1, int(1 / (c1 + cmu) / n / 10))
    tol = problem.feasibility_rtol if tol is None else tol
    f = _merit_fn(problem, lam, tol, penalty)
    hist, best, best_z, gen, done = [], np.inf, start, 0, 0
    while done < evaluations:
        arz = rng.standard_normal((lam, n))
        ary = arz * D @ B.T
        x = np.clip(mean + sigma * ary, 0.0, 1.0)
        zb = lo + (hi - lo) * x
        merit, obj = (np.asarray(a) for a in f(jnp.asarray(zb)))
        take = min(lam, evaluations - done)
        k = int(np.argmin(obj))
        if obj[k] < best:
            best, best_z = float(obj[k]), zb[k]
        hist.append(np.minimum.accumulate(np.minimum(obj[:take], hist[-1][-1] if hist else np.inf)))
        done += take
        merit = np.where(np.isfinite(merit), merit, 1e30)
        order = np.argsort(merit)[:mu]
        y_sel = (x[order] - mean) / sigma
        old = mean
        mean = mean + sigma * (w @ y_sel)
        ymean = (mean - old) / sigma
        inv_sqrt_c_y = B @ ((B.T @ ymean) / D)
        ps = (1 - cs) * ps + math.sqrt(cs * (2 - cs) * mueff) * inv_sqrt_c_y
        gen += 1
        hsig = np.linalg.norm(ps) / math.sqrt(1 - (1 - cs) ** (2 * gen)) / chin < 1.4 + 2 / (n + 1)
        pc = (1 - cc) * pc + hsig * math.sqrt(cc * (2 - cc) * mueff) * ymean
        C = (
            (1 - c1 - cmu) * C
            + c1 * (np.outer(pc, pc) + (1 - hsig) * cc * (2 - cc) * C)
            + cmu * (y_sel.T * w) @ y_sel
        )
        sigma *= math.exp((cs / damps) * (np.linalg.norm(ps) / chin - 1))
        sigma = min(sigma, 1.0)
        if gen % eigen_every == 0:
            C = np.triu(C) + np.triu(C, 1).T
            evals, B = np.linalg.eigh(C)
            D = np.sqrt(np.maximum(evals, 1e-20))
    return problem.from_z(jnp.asarray(best_z)), np.concatenate(hist)
