"""Sensitivity: which knob matters most, as elasticities ``d log(metric) / d log(knob)``.

At one design point, ``E[i, j] = d log m_i / d log x_j`` for every metric ``m_i`` and every
continuous positive leaf ``x_j`` of the design (`hwgrad.design` paths): ``-1`` means
doubling the knob halves the metric (decode time against memory bandwidth when memory-bound),
``0`` means no effect. All elasticities come from one forward-mode linearisation
(``jax.jacfwd`` of the log-metrics with respect to ``log x``, at ``x = x0 exp(s)``, ``s = 0``,
so the point is exactly the design) in one compiled program per design structure. Forward mode
keeps an undefined metric (NaN: an unknown TDP, price or die area) from poisoning the others: a
tangent only flows along the metric's own computation, whereas a reverse pass would multiply
the zero cotangent of a NaN metric by NaN partials of shared inputs. An undefined metric gets a
NaN row and a one-line cause naming the unknown input(s), found by probing the model with each
unknown alone and all but one. With the default straight-through roofline the values are exact
and the derivatives those of the smooth surrogate (`hwgrad.smooth`).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .design import (
    INTEGER_FIELDS,
    METRICS,
    SERVED_ROOTS,
    as_design,
    design,
    evaluate_design,
    float_dtype,
    result_index,
    set_leaves,
)
from .paths import Index, suggest
from .specs import Options

__all__ = ["Sensitivity", "sensitivity", "register_cli", "SERVICE_HEADLINE"]

#: the metrics ``hwgrad sensitivity`` reports first for a served design
SERVICE_HEADLINE = ("goodput_rps", "ttft_pct_s", "tpot_pct_s", "capacity_rps", "usd_per_million_good_requests")


class Sensitivity(NamedTuple):
    """Elasticities ``d log(metric) / d log(knob)`` at one design point.

    ``elasticity[i, j]`` is the relative change of ``metrics[i]`` per relative change of
    ``knobs[j]`` (``+1``: proportional; ``-1``: inversely proportional; ``0``: no effect).
    A whole row is NaN where the metric is undefined (e.g. no TDP or chip price: its cause
    is in ``undefined``); a single NaN entry is a derivative that does not exist at this
    point. NaN is never shown as a number: tables print ``nan``, JSON ``null``.
    """

    metrics: tuple
    knobs: tuple
    knob_values: np.ndarray  # (k,)
    metric_values: np.ndarray  # (m,)
    elasticity: np.ndarray  # (m, k)
    integer_knobs: frozenset = frozenset()
    undefined: Mapping = {}  # metric -> why it is undefined (one line)

    def rows(
        self, metric: str | None = None, top: int | None = None, zeros: bool = False
    ) -> list[tuple[str, str, float]]:
        """``(metric, knob, elasticity)`` sorted by magnitude (largest first; NaN entries of
        a defined metric first, they need attention), exact zeros and undefined metrics
        dropped; one metric or all."""
        if metric is not None and metric not in self.metrics:
            raise ValueError(f"metric {metric!r}: {suggest(metric, self.metrics)}")
        chosen = [metric] if metric is not None else list(self.metrics)

        def key(r):
            # magnitudes equal to 5 decimals (the model is multiplicative: bandwidth and its
            # efficiency share one elasticity) keep the knob order, so float32 rounding in
            # the last digit cannot reorder them between CPUs
            return -math.inf if math.isnan(r[2]) else -round(abs(r[2]), 5)

        out = []
        for name in chosen:
            i = self.metrics.index(name)
            if name in self.undefined:
                continue
            row = [
                (name, k, float(e)) for k, e in zip(self.knobs, self.elasticity[i], strict=True) if zeros or e != 0
            ]
            row.sort(key=key)
            out += row[:top] if top is not None else row
        if metric is None:
            out.sort(key=key)
            if top is not None:
                out = out[:top]
        return out

    def table(self, metric: str | None = None, top: int | None = 15, zeros: bool = False) -> str:
        """A text table per metric, knobs sorted by |elasticity|."""
        lines = []
        width = max((len(k) for k in self.knobs), default=10)
        for i, name in enumerate(self.metrics):
            if metric is not None and name != metric:
                continue
            if name in self.undefined:
                lines.append(f"{name} = nan: {self.undefined[name]}")
                lines.append("")
                continue
            lines.append(f"{name} = {self.metric_values[i]:.4g}")
            lines.append(f"  {'knob':<{width}}  {'value':>11}  {'elasticity':>10}")
            rows = self.rows(name, top, zeros)
            for _, knob, e in rows:
                j = self.knobs.index(knob)
                mark = "  (whole number, relaxed)" if knob in self.integer_knobs else ""
                if math.isnan(e):
                    mark = "  (derivative undefined at this point)" + mark
                lines.append(f"  {knob:<{width}}  {self.knob_values[j]:>11.4g}  {e:>+10.4f}{mark}")
            n_zero = len(self.knobs) - len(self.rows(name))
            if n_zero and not zeros:
                lines.append(f"  ({n_zero} other knobs: elasticity 0; --all lists them)")
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"

    def to_dict(self, zeros: bool = False) -> dict:
        """JSON-ready: ``{metric: {"value": v, "elasticity": {knob: e, ...}}}`` (sorted); an
        undefined metric has ``value`` null, an empty ``elasticity`` and ``undefined`` (why);
        a NaN elasticity is null."""
        out = {}
        for i, name in enumerate(self.metrics):
            v = float(self.metric_values[i])
            entry = {
                "value": v if math.isfinite(v) and name not in self.undefined else None,
                "elasticity": {k: (None if math.isnan(e) else e) for _, k, e in self.rows(name, zeros=zeros)},
            }
            if name in self.undefined:
                entry["undefined"] = self.undefined[name]
            out[name] = entry
        return out


@functools.lru_cache(maxsize=8)
def _jacobian_fn(
    treedef, targets: tuple, out_targets: tuple, probe_targets: tuple, options: Options, dtype: str
):
    """``jit`` of (forward-mode Jacobian of the log-metrics, metric values, metric values of
    the probe points) for one design structure; numbers are arguments, so a changed design
    point reuses the compiled program.

    Forward mode (``jax.jacfwd``) keeps an undefined metric from poisoning the others: a
    tangent only flows along the metric's own computation (and ``where`` selects tangents),
    whereas a reverse pass multiplies the zero cotangent of a NaN metric by NaN partials in
    every shared input.
    """
    def metrics_at(leaves):
        r = jax.tree_util.tree_leaves(evaluate_design(jax.tree_util.tree_unflatten(treedef, leaves), options))
        return jnp.stack([jnp.asarray(r[i], dtype)[e] for i, e in out_targets])

    def log_metrics(log_scale, base, x0):
        # x = x0 * exp(s): at s = 0 the point is exactly the design (no exp(log x) rounding)
        m = metrics_at(set_leaves(base, targets, x0 * jnp.exp(log_scale)))
        ok = jnp.isfinite(m) & (m > 0)
        return jnp.log(jnp.where(ok, m, 1.0)), m

    jac = jax.jacfwd(log_metrics, has_aux=True)

    def run(log_scale, base, x0, probes):
        j, m = jac(log_scale, base, x0)
        probed = (
            jax.vmap(lambda p: metrics_at(set_leaves(base, probe_targets, p)))(probes)
            if probe_targets
            else jnp.zeros((0, len(out_targets)), dtype)
        )
        return j, m, probed

    return jax.jit(run)


def _why_undefined(
    value: float, nan_paths: Sequence[str], alone_nan: np.ndarray, fixed: np.ndarray, label: str = ""
) -> str:
    """One line on why a metric is undefined, from two probes per unknown (NaN) input:
    ``alone_nan[j]`` (the metric with only input j unknown) and ``fixed[j]`` (all unknown but
    input j); NaN means still undefined."""
    unknown = f"unknown (NaN){' for ' + label if label else ''}"
    if math.isfinite(value):
        return f"value {value:g} is not > 0, so its logarithm (and every elasticity) is undefined"
    needs = [p for p, v in zip(nan_paths, alone_nan, strict=True) if not math.isfinite(v)]
    either = [p for p, v in zip(nan_paths, fixed, strict=True) if math.isfinite(v)]
    if needs:
        return (
            f"{', '.join(needs)} {unknown}: give {'it' if len(needs) == 1 else 'them'} to define this metric"
        )
    if either:
        return f"{' or '.join(either)} {unknown}: give one of them to define this metric"
    if nan_paths:
        return f"{', '.join(nan_paths)} {unknown}: give them to define this metric"
    return "NaN inside the model at this design point (an overflow?): please report it"


def sensitivity(
    system,
    model,
    workload,
    compression=None,
    efficiency=None,
    economics=None,
    *,
    metrics: Sequence[str] = METRICS,
    knobs: Sequence[str] | None = None,
    include_integers: bool = False,
    options: Options = Options(),
    label: str = "",
    service=None,
    engine=None,
    prefill=None,
) -> Sensitivity:
    """Elasticities of every metric with respect to every continuous positive knob.

    ``E[i, j] = d log m_i / d log x_j``, from ``jax.jacfwd`` of the log-metrics with
    respect to ``log x`` at the design point (one linearisation, one batched forward
    pass). With the default straight-through roofline the values are exact and the
    derivatives are those of the smooth surrogate (see `hwgrad.smooth`);
    ``Options(roofline="smooth")`` makes both smooth.

    A metric that is undefined (NaN: an unknown TDP, price or die area) gets a NaN row and a
    one-line cause in ``Sensitivity.undefined`` naming the unknown input(s); the metrics
    that are defined keep their exact derivatives.

    Args:
      system, model, workload, compression, efficiency, economics: the design point.
      metrics: result paths (default `METRICS`).
      knobs: leaf paths; default every leaf that is finite and > 0, less whole-number
        structure (layers, heads, batch, tp...) unless ``include_integers``.
      options: static evaluation options.
      label: name of the design point in the causes of undefined metrics (e.g. ``"h800"``).
      service, engine, prefill: a served design (`hwgrad.design.design`): its metrics
        (``goodput_rps``, ``ttft_pct_s``, ...) and its knobs (``service.arrival_rate_rps``)
        join the others.

    Returns:
      A `Sensitivity` (``.table()`` prints it sorted by magnitude).

    Example: ``elasticity ~ -1`` of ``tpot_s`` in ``system.chip.tiers.0.bandwidth_bytes_per_s``
    means decode is memory-bound: twice the bandwidth, half the time per token.
    """

    d = design(system, model, workload, compression, efficiency, economics, service, engine, prefill)
    index = Index(d)
    integer = set()
    if knobs is None:
        knobs = []
        for p, i, e in index.items():
            v = index.value(i, e)
            field = p.split(".")[-1] if e == () else p.split(".")[-1 - len(e)]
            is_int = field in INTEGER_FIELDS
            if math.isfinite(v) and v > 0 and (include_integers or not is_int):
                knobs.append(p)
                if is_int:
                    integer.add(p)
    else:
        integer = {k for k in knobs if k.split(".")[-1] in INTEGER_FIELDS}
    knobs = tuple(knobs)
    if not knobs:
        raise ValueError("no knobs: name at least one leaf path with --knob (a finite value > 0)")
    targets = [index.resolve(k, "knob") for k in knobs]
    x0 = np.array([index.value(i, e) for i, e in targets], dtype=float)
    bad = [k for k, v in zip(knobs, x0, strict=True) if not (math.isfinite(v) and v > 0)]
    if bad:
        raise ValueError(f"knob {bad[0]} = {x0[knobs.index(bad[0])]:g}: elasticities need a finite value > 0")
    metrics = tuple(metrics)
    out_index = result_index(d, options)
    out_targets = tuple(out_index.resolve(m, "metric") for m in metrics)
    dtype = float_dtype()
    base = [np.asarray(v, dtype=dtype) for v in index.leaves]
    # unknown (NaN) inputs, probed two ways each to name the cause of an undefined metric
    nan_items = [(p, i, e) for p, i, e in index.items() if math.isnan(index.value(i, e))]
    nan_paths = [p for p, _, _ in nan_items]
    n = len(nan_items)
    probes = np.full((2 * n, n), np.nan)
    probes[:n] = np.where(np.eye(n, dtype=bool), np.nan, 1.0)  # only input j unknown
    probes[n:] = np.where(np.eye(n, dtype=bool), 1.0, np.nan)  # every input but j unknown
    probe_targets = tuple((i, e) for _, i, e in nan_items)
    jacobian = _jacobian_fn(
        index.treedef, tuple(targets), out_targets, probe_targets, options, str(np.dtype(dtype))
    )
    jac, values, probed = jacobian(
        np.zeros(len(knobs), dtype=dtype), base, np.asarray(x0, dtype=dtype), np.asarray(probes, dtype=dtype)
    )
    values = np.asarray(values, dtype=float)
    jac = np.asarray(jac, dtype=float)
    probed = np.asarray(probed, dtype=float)
    undefined = {}
    for k, name in enumerate(metrics):
        v = values[k]
        if not (math.isfinite(v) and v > 0):
            jac[k] = np.nan
            undefined[name] = _why_undefined(v, nan_paths, probed[:n, k], probed[n:, k], label)
    return Sensitivity(metrics, knobs, x0, values, jac, frozenset(integer), undefined)


# ----------------------------------------------------------------------------- CLI


def register_cli(subparsers) -> None:
    """Add ``hwgrad sensitivity``."""
    from .cli import add_design_arguments, positive_int  # one argparse type for every subcommand
    from .service import add_service_arguments

    s = subparsers.add_parser(
        "sensitivity",
        help="elasticities d log(metric) / d log(knob) at one design point",
        description="Which knob matters most: elasticities of every metric with respect to every continuous "
        "positive leaf, from one forward-mode pass, sorted by magnitude; an undefined metric (unknown TDP, "
        "price...) is shown as nan with the unknown input named.",
    )
    add_design_arguments(s)
    add_service_arguments(s)
    s.add_argument(
        "--metric",
        action="append",
        metavar="NAME",
        help=f"metric(s) to report (default: {', '.join(METRICS)}; a served design (--rate): "
        f"{', '.join(SERVICE_HEADLINE)} first)",
    )
    s.add_argument(
        "--knob",
        action="append",
        metavar="PATH",
        help="restrict to these knobs: a path (system.network.hop_latency_s), a group (system.chip) or a "
        "glob (**.bandwidth_bytes_per_s, system.chip.*_efficiency); repeatable",
    )
    s.add_argument(
        "--allow-overflow", action="store_true", help="differentiate designs that do not fit instead of failing"
    )
    s.add_argument(
        "--include-integers", action="store_true", help="also whole-number knobs (batch, tp, layers...)"
    )
    s.add_argument("--top", type=positive_int, default=15, help="knobs shown per metric (default 15)")
    s.add_argument(
        "--roofline", choices=("straight_through", "smooth"), default="straight_through",
        help="straight_through (exact values, surrogate gradients; default) or smooth (both smooth)",
    )  # fmt: skip
    s.add_argument(
        "--all", action="store_true", help="also list the knobs with elasticity 0 (in the table and in --json)"
    )
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_sensitivity)


def cmd_sensitivity(args) -> int:
    from .cli import design_from_args, enable_compile_cache, expand_knobs, require_fits

    enable_compile_cache()
    d = design_from_args(args)
    if not args.allow_overflow:
        require_fits(d)  # the capacity check of `hwgrad eval`
    knobs = expand_knobs(d, args.knob) if args.knob else None
    dd = as_design(d)
    metrics = tuple(args.metric) if args.metric else (SERVICE_HEADLINE if "service" in dd else ()) + METRICS
    options = Options(roofline=args.roofline)
    out_index = result_index(dd, options)
    for m in metrics:
        out_index.resolve(m, "--metric")
    sens = sensitivity(
        dd["system"], dd["model"], dd["workload"], dd["compression"], dd["efficiency"], dd["economics"],
        metrics=metrics, knobs=knobs, include_integers=args.include_integers, options=options,
        label=d.get("hardware_name", ""), **{r: dd.get(r) for r in SERVED_ROOTS},
    )  # fmt: skip
    if args.json:
        print(
            json.dumps(
                {
                    "knob_values": dict(zip(sens.knobs, sens.knob_values.tolist(), strict=True)),
                    **sens.to_dict(zeros=args.all),
                },
                indent=2,
            )
        )
        return 0
    wl = dd["workload"]
    print(
        f"{d.get('model_name', 'custom')} on {int(dd['system'].n_chips)} x {d.get('hardware_name', 'custom')}, "
        f"batch {float(wl.batch):g}, prompt {float(wl.prompt_len):g}, output {float(wl.output_len):g}; "
        f"efficiency: {d.get('efficiency_label', 'given')}"
    )
    print("elasticity = d log(metric) / d log(knob): -1 means doubling the knob halves the metric")
    print()
    print(sens.table(top=args.top, zeros=args.all), end="")
    return 0
