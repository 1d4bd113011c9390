"""Fitting: the parameters the data identify, by gradient descent through the compiled model.

Parameters live in an unconstrained space (a sigmoid maps each into its physical range:
`hwgrad.calibrate.parameters`); the loss is a Cauchy loss of ``log(predicted / measured)``
with each hardware's rows weighted equally, plus Gaussian priors on the shared values and on
the offsets of lines, families and stacks (shrinkage), minimised by Adam (optax) through the
``vmap``-ped, jit-compiled `Engine`. The ``tuned`` stacks
(`tuned_stacks`, the default serving stack: one per vendor line) are the best of the fitted
stacks with enough rows.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import presets
from ..specs import Stack, replace
from ..stacks import PRODUCTION_ENGINES, STACK_VERSIONS, stack_parent
from .cases import Case, Engine, Prepared
from .parameters import PARAMETERS, Calibration, base_stack


@dataclasses.dataclass(frozen=True)
class FitSettings:
    """Knobs of `fit` (defaults are the ones used for the shipped parameters).

    Attributes:
      parameters: keys (``"chip.<field>"`` / ``"stack.<field>"``) of `PARAMETERS` to
        fit; the others stay at their starting value.
      levels: offset levels used (``hw_line``, ``hw_family``, ``stack``, ``stack_version``:
        a `hwgrad.stacks.STACK_VERSIONS` version's offset from its family); an empty tuple
        fits one shared set.
      priors: use the priors of `PARAMETERS` on the shared values (offsets always
        have theirs).
      loss_scale: scale ``d`` of the Cauchy loss on ``log(pred / measured)``.
      steps, learning_rate: Adam iterations and step size.
      balance: ``"hardware"`` (each hardware's rows weigh as much as another's) or
        ``"row"``.
    """

    parameters: tuple[str, ...] = tuple(p.key for p in PARAMETERS)
    levels: tuple[str, ...] = ("hw_line", "stack", "stack_version")
    priors: bool = True
    loss_scale: float = 0.1
    steps: int = 500
    learning_rate: float = 0.05
    balance: str = "hardware"


def row_weights(cases: Sequence[Case], balance: str) -> np.ndarray:
    if balance == "row":
        return np.ones(len(cases))
    if balance != "hardware":
        raise ValueError(f"balance = {balance!r}: use 'row' or 'hardware'")
    keys = [c.row.hardware for c in cases]
    counts: dict[str, int] = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    # sqrt: a hardware with many rows still counts more, but not in proportion
    return np.asarray([1.0 / math.sqrt(counts[k]) for k in keys])


_LEVEL_OF_CASE = {
    "hw_line": lambda c: c.hw_line,
    "hw_family": lambda c: c.hw_family,
    "stack": lambda c: stack_parent(c.family),
    "stack_version": lambda c: c.family if c.family in STACK_VERSIONS else "",
}

#: the level a member's value builds on, and its member there: a stack version on its
#: family, a hardware family on its vendor line
_PARENT = {"stack_version": ("stack", stack_parent), "hw_family": ("hw_line", presets.hardware_line)}


class Fitter:
    """Compiled loss and Adam loop for one `Engine` (reused across CV folds)."""

    def __init__(self, engine: Engine, settings: FitSettings):
        self.engine = engine
        self.settings = settings
        self.params = PARAMETERS
        self.active = np.asarray([p.key in settings.parameters for p in self.params], np.float32)
        self.stage_mask = {
            st: np.asarray([p.stage == st for p in self.params], np.float32) for st in ("latency", "energy")
        }
        self.init_u = np.asarray([p.to_u(p.init) for p in self.params], np.float32)
        self.members: dict[str, tuple[str, ...]] = {}
        self.index: dict[str, np.ndarray] = {}
        self.mask: dict[str, np.ndarray] = {}
        for level in settings.levels:
            names = tuple(sorted({_LEVEL_OF_CASE[level](c) for c in engine.cases} - {"", "shared"}))
            pos = {n: i for i, n in enumerate(names)}
            self.members[level] = names
            # rows of an unrecognised member use the extra zero row at the end
            self.index[level] = np.asarray(
                [pos.get(_LEVEL_OF_CASE[level](c), len(names)) for c in engine.cases], np.int32
            )
            # (members, parameters): which member gets an offset of which parameter
            self.mask[level] = np.asarray(
                [
                    [
                        1.0
                        if level in p.levels
                        and p.key in settings.parameters
                        and (not p.members or name in p.members)
                        else 0.0
                        for p in self.params
                    ]
                    for name in names
                ],
                np.float32,
            ).reshape(len(names), len(self.params))
        self.offset_sd = np.asarray([p.offset_sd for p in self.params], np.float32)
        self.prior_sd = np.asarray([p.prior_sd for p in self.params], np.float32)
        self.log_measured = np.log(engine.measured).astype(np.float32)
        self.is_energy = np.asarray([c.row.is_energy for c in engine.cases], bool)
        # the fields that are not fitted, per row: its family's collective library and its
        # stack version's kernel traits
        fitted = {p.field for p in self.params if p.target == "stack"}
        bases = [c.stack(base_stack(c.family)) for c in engine.cases]
        self.fixed = {
            f.name: jnp.asarray([getattr(b, f.name) for b in bases], jnp.float32)
            for f in dataclasses.fields(Stack)
            if f.name not in fitted and f.name != "collective_bandwidth_fraction"
        }
        self.collective = jnp.asarray(
            np.stack([b.collective_bandwidth_fraction for b in bases]) if engine.n_rows else np.zeros((0, 5)),
            jnp.float32,
        )
        self._run = jax.jit(self._adam)

    def chain(self, level: str, i: int) -> list[tuple[str, int]]:
        """The offsets a member's value adds to the shared one, as ``(level, member index)``:
        its own, and its parent's (a stack version's family, a hardware family's line)."""
        out = [(level, i)]
        if level in _PARENT:
            up, parent_of = _PARENT[level]
            names, parent = self.members.get(up, ()), parent_of(self.members[level][i])
            if parent in names:
                out.append((up, names.index(parent)))
        return out

    def row_u(self, theta, deltas):
        u = jnp.broadcast_to(theta[None, :], (self.engine.n_rows, len(self.params)))
        for level, d in deltas.items():
            full = jnp.concatenate([d * self.mask[level], jnp.zeros((1, d.shape[1]), d.dtype)], axis=0)
            u = u + full[self.index[level]]
        return u

    def specs(self, theta, deltas) -> tuple[Stack, dict]:
        u = self.row_u(theta, deltas)
        chip_values, stack_values = {}, {}
        for j, p in enumerate(self.params):
            (chip_values if p.target == "chip" else stack_values)[p.field] = p.from_u(u[:, j])
        fixed = {k: v for k, v in self.fixed.items() if k not in stack_values}
        fixed["collective_bandwidth_fraction"] = self.collective
        return Stack(**stack_values, **fixed), chip_values

    def loss(self, params, weights, specs):
        theta, deltas = params
        pred = self.engine.row_predictions(*self.specs(theta, deltas), specs)
        r = jnp.log(pred) - self.log_measured
        d = self.settings.loss_scale
        rho = 0.5 * d * d * jnp.log1p((r / d) ** 2)
        data = jnp.sum(weights * rho) / jnp.maximum(jnp.sum(weights), 1e-12)
        prior = 0.0
        for level, dl in deltas.items():
            prior = prior + 0.5 * jnp.sum((dl * self.mask[level] / self.offset_sd[None, :]) ** 2)
        if self.settings.priors:
            z = (theta - self.init_u) / self.prior_sd * self.active
            prior = prior + 0.5 * jnp.sum(z**2)
        return data + d * d * prior / jnp.maximum(jnp.sum(weights > 0), 1.0)

    def _adam(self, params, weights, seen, stage_mask, specs):
        opt = optax.adam(self.settings.learning_rate)
        state = opt.init(params)
        grad_fn = jax.value_and_grad(self.loss)

        def step(carry, _):
            params, state = carry
            value, (g_theta, g_deltas) = grad_fn(params, weights, specs)
            g_theta = g_theta * self.active * stage_mask
            g_deltas = {
                k: v * seen[k][:, None] * stage_mask[None, :] * self.mask[k] for k, v in g_deltas.items()
            }
            g = jax.tree_util.tree_map(lambda x: jnp.where(jnp.isfinite(x), x, 0.0), (g_theta, g_deltas))
            updates, state = opt.update(g, state, params)
            return (optax.apply_updates(params, updates), state), value

        (params, _), losses = jax.lax.scan(step, (params, state), None, length=self.settings.steps)
        return params, losses

    def run(self, weights: np.ndarray) -> tuple[Calibration, np.ndarray]:
        """Fit with row weights ``weights``: ``(calibration, loss per step)``."""
        params, seen, losses = self.optimise(weights)
        return self.calibration(params, seen, weights), losses

    def optimise(self, weights: np.ndarray):
        """Two stages: the latency parameters on the latency/throughput rows, then (those
        frozen) the energy parameters on the energy rows.

        Returns:
          ``((theta, deltas), seen, losses)``: the unconstrained shared values ``(P,)`` and
          offsets ``{level: (members, P)}``, which members had rows, the loss per step.
        """
        is_energy = self.is_energy
        theta = jnp.asarray(self.init_u)
        deltas = {lv: jnp.zeros((len(m), len(self.params)), jnp.float32) for lv, m in self.members.items()}
        losses = []
        seen_all = {lv: np.zeros(len(m), np.float32) for lv, m in self.members.items()}
        for stage, rows in (("latency", ~is_energy), ("energy", is_energy)):
            w = np.where(rows, weights, 0.0).astype(np.float32)
            if w.sum() == 0:
                continue
            seen = {
                lv: np.asarray(
                    [float(np.any((w > 0) & (self.index[lv] == i))) for i in range(len(self.members[lv]))],
                    np.float32,
                )
                for lv in self.members
            }
            for lv in seen:
                seen_all[lv] = np.maximum(
                    seen_all[lv], seen[lv] * (self.mask[lv] * self.stage_mask[stage]).max(axis=1, initial=0.0)
                )
            (theta, deltas), loss = self._run(
                (theta, deltas), jnp.asarray(w), {k: jnp.asarray(v) for k, v in seen.items()},
                jnp.asarray(self.stage_mask[stage]), self.engine.specs,
            )  # fmt: skip
            losses.append(np.asarray(loss))
        params = (np.asarray(theta), {k: np.asarray(v) for k, v in deltas.items()})
        return params, seen_all, np.concatenate(losses) if losses else np.zeros(0)

    def numbers(self, weights: np.ndarray) -> list[tuple[str, int, int]]:
        """The numbers a fit with row weights ``weights`` chooses, as ``(level, member index,
        parameter index)`` (``("shared", -1, j)`` for a shared value): every active shared
        value, and an offset per member with weighted rows of the parameter's stage that the
        parameter may move."""
        out = []
        for j, p in enumerate(self.params):
            if not self.active[j]:
                continue
            out.append(("shared", -1, j))
            rows = (weights > 0) & (self.is_energy == (p.stage == "energy"))
            for level, names in self.members.items():
                out += [(level, i, j) for i in range(len(names))
                        if self.mask[level][i, j] and np.any(rows & (self.index[level] == i))]  # fmt: skip
        return out

    def fitted_numbers(self, weights: np.ndarray) -> int:
        """How many numbers a fit with row weights ``weights`` chooses (`numbers`)."""
        return len(self.numbers(weights))

    def calibration(self, params, seen, weights) -> Calibration:
        """The resolved `Calibration` of unconstrained ``params`` from `optimise`."""
        theta, deltas = params
        weights = np.where(self.is_energy, 0.0, weights)

        def values(u, target):
            return {p.field: float(p.from_u(u[j])) for j, p in enumerate(self.params) if p.target == target}

        def offset(level, name):
            names = self.members.get(level, ())
            if name not in names or not float(seen[level][names.index(name)]):
                return np.zeros_like(theta)
            i = names.index(name)
            return deltas[level][i] * self.mask[level][i]

        def member_u(level, name):
            """The shared values plus the member's offset and its parent's (`_PARENT`)."""
            u = theta + offset(level, name)
            if level in _PARENT:
                up, parent_of = _PARENT[level]
                u = u + offset(up, parent_of(name))
            return u

        hardware = {"shared": values(theta, "chip")}
        families = {fam for fam, _ in presets.HARDWARE_FAMILIES.values()}
        lines = {line for _, line in presets.HARDWARE_FAMILIES.values()}
        for line in sorted(lines):
            hardware[line] = values(member_u("hw_line", line), "chip")
        for fam in sorted(families):
            hardware[fam] = values(member_u("hw_family", fam), "chip")
        stacks = {"default": replace(base_stack("default"), **values(theta, "stack"))}
        rows = rows_per_line_and_stack(self.engine.cases, weights)
        fitted = {fam for _, fam in rows}
        # a family is fitted when it or one of its versions has rows
        for level, with_rows in (("stack", {stack_parent(f) for f in fitted}), ("stack_version", fitted)):
            for name in self.members.get(level, ()):
                if name in with_rows:
                    stacks[name] = replace(base_stack(name), **values(member_u(level, name), "stack"))
        stacks.update(tuned_stacks(stacks, rows))
        return Calibration(hardware=hardware, stacks=stacks)


#: rows a stack needs (on a vendor line, or in all) to count for the ``tuned`` stacks
TUNED_MIN_ROWS = 10


def rows_per_line_and_stack(cases: Sequence[Case], weights=None) -> dict[tuple[str, str], int]:
    """Fitted latency/throughput rows per ``(vendor line, stack family)`` (rows of a
    recognised stack with weight > 0; all such rows when ``weights`` is None)."""
    rows: dict[tuple[str, str], int] = {}
    for i, c in enumerate(cases):
        fitted = not c.row.is_energy if weights is None else weights[i] > 0
        if fitted and c.family:
            rows[c.hw_line, c.family] = rows.get((c.hw_line, c.family), 0) + 1
    return rows


def tuned_stacks(stacks: dict[str, Stack], rows: dict[tuple[str, str], int]) -> dict[str, Stack]:
    """The ``tuned`` stacks: what the best stack in the data achieves.

    ``tuned/<line>`` for each vendor line (`hwgrad.presets.hardware_line`): per software
    cost, the lowest fitted value - and the highest kernel FLOPS fraction - of the
    production serving engines (`hwgrad.stacks.PRODUCTION_ENGINES`) with >= `TUNED_MIN_ROWS`
    rows on that line; a line without one takes the stacks that have them there (Gaudi's
    SynapseAI, llama.cpp on client parts). It runs the collective library of the line's
    stack with the most rows (`hwgrad.stacks.COLLECTIVE_BY_STACK`: the ROCm custom
    all-reduce + RCCL on AMD parts). ``tuned`` (no vendor named) takes the same best
    values over the production engines with that many rows in all, with the best library
    measured on NVLink (custom all-reduce + NCCL). A tuned stack allocates KV on demand
    when one of its pool does (`hwgrad.stacks.KV_ON_DEMAND_STACKS`). A row's kernel traits
    are not carried over (a tuned stack reads KV once per query group).

    Args:
      stacks: the fitted stacks by family (with ``"default"``, whose shared values fill the
        fields a stack does not fit).
      rows: rows fitted per ``(vendor line, stack family)``.
    """
    total: dict[str, int] = {}
    for (_, fam), n in rows.items():
        total[fam] = total.get(fam, 0) + n
    pool = [f for f in PRODUCTION_ENGINES if total.get(f, 0) >= TUNED_MIN_ROWS]
    out = {"tuned": _best(stacks, pool, "tuned")}
    for line in sorted({line for line, _ in rows}):
        here = {f: n for (ln, f), n in rows.items() if ln == line and n >= TUNED_MIN_ROWS and f in stacks}
        pool = [f for f in PRODUCTION_ENGINES if f in here] or sorted(here)
        if pool:
            library = max(pool, key=lambda f: (here[f], f))
            out[f"tuned/{line}"] = _best(stacks, pool, library)
    return out


def _best(stacks: dict[str, Stack], pool: Sequence[str], library: str) -> Stack:
    """Per software cost the best value of the stacks ``pool``, with the collective library
    of the stack family ``library``."""
    if not pool:
        return stacks["default"]
    members = [stacks[n] for n in pool]
    fields = ("op_overhead_s", "step_overhead_s", "collective_overhead_s")
    best = {f: min(float(getattr(s, f)) for s in members) for f in fields}
    best["flops_efficiency"] = max(float(s.flops_efficiency) for s in members)
    best["kv_on_demand"] = max(float(s.kv_on_demand) for s in members)
    lib = base_stack(library).collective_bandwidth_fraction
    return replace(stacks["default"], **best, collective_bandwidth_fraction=lib)


def fit(
    prepared: Prepared, settings: FitSettings = FitSettings(), engine: Engine | None = None
) -> tuple[Calibration, np.ndarray]:
    """Fit the `PARAMETERS` to the latency/throughput rows of ``prepared``.

    Minimises ``sum_i w_i rho(log(pred_i / measured_i)) / sum_i w_i`` (Cauchy ``rho``)
    plus Gaussian priors on the shared values and on every family/stack offset, with Adam
    in the bounded unconstrained space, through the jit-compiled model.

    Returns:
      ``(calibration, losses)``: the fitted `Calibration` and the loss per step.
    """
    engine = engine or Engine(prepared.cases)
    fitter = Fitter(engine, settings)
    return fitter.run(row_weights(prepared.cases, settings.balance))


#: cross-validation groupings: what a fold holds out
