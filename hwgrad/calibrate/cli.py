"""The ``hwgrad validate`` and ``hwgrad calibrate`` commands: measurement CSV in, report out.

``validate`` prints the per-row table, the per-group summary and the summary line for the
calibrated and speed-of-light parameters; ``calibrate`` fits, cross-validates and writes a
parameter file whose header records the command and the errors.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence

import numpy as np

from ..measurements import METRICS, read_measurements
from .cases import Engine, prepare
from .crossval import cross_validate
from .fit import FitSettings, Fitter, row_weights
from .identify import format_identification, identification
from .parameters import PARAMETERS, Calibration, default_calibration, load_calibration, write_calibration
from .report import Report, format_summary, validate


def _fmt_measure(value: float, metric: str) -> str:
    return f"{value:.4g} {METRICS[metric]}"


def _print_table(report: Report, file=None) -> None:
    file = file or sys.stdout
    head = (
        f"{'id':>5} {'model':<14} {'hardware':<15} {'tp':>2} {'batch':>5} {'mode':<5} {'in':>5} {'out':>5} "
        f"{'dtype':<6} {'metric':<18} {'stack':<15} {'measured':>14} {'predicted':>14} {'error':>8}  notes"
    )
    print(head, file=file)
    for case, p, m in zip(report.cases, report.predicted, report.measured, strict=True):
        r = case.row
        err = 100.0 * (p - m) / m
        print(
            f"{r.id:>5} {r.model[:14]:<14} {r.hardware[:15]:<15} {r.tp:>2} {r.batch:>5} {r.batching[:5]:<5} "
            f"{r.input_len:>5} {r.output_len:>5} {r.weight_dtype:<6} {r.metric:<18} "
            f"{(case.family or '(default)')[:15]:<15} {_fmt_measure(m, r.metric):>14} "
            f"{_fmt_measure(p, r.metric):>14} {err:>+7.1f}%  {'; '.join(case.notes)}",
            file=file,
        )


def _print_groups(report: Report, file=None) -> None:
    file = file or sys.stdout
    print(f"by stack x hardware family ({report.label}):", file=file)
    print(
        f"  {'stack':<16} {'hardware family':<24} {'rows':>4} {'median':>7} {'p90':>7} {'bias':>7}", file=file
    )
    for g in report.by_group():
        print(
            f"  {g['stack']:<16} {g['hardware_family']:<24} {g['rows']:>4} {g['median_ape']:>6.1f}% "
            f"{g['p90_ape']:>6.1f}% {g['median_signed_pct']:>+6.1f}%",
            file=file,
        )
    if stats := _ratio_stats(report):
        median, p90, pairs = stats
        print(
            f"matched groups (same rows on other hardware): {pairs} pairs; speed-ratio error "
            f"median {median:.1f}% | p90 {p90:.1f}%",
            file=file,
        )


def _print_skipped(skipped, file=None) -> None:
    file = file or sys.stdout
    if not skipped:
        return
    print(f"skipped {len(skipped)} row(s) that cannot be modelled:", file=file)
    for row, reason in skipped:
        print(
            f"  id {row.id} (line {row.line}, {row.model} on {row.hardware}, {row.metric}): {reason}",
            file=file,
        )


def _write_csv(path: str, reports: Sequence[Report]) -> None:
    import csv

    fields = [
        "efficiency", "id", "line", "model", "hardware", "n_chips", "tp", "batch", "batching", "input_len",
        "output_len", "weight_dtype", "metric", "software", "stack", "hardware_family", "measured",
        "predicted", "ape", "signed_error_pct", "notes",
    ]  # fmt: skip
    try:
        fh = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise ValueError(f"--csv {path}: cannot write ({exc.strerror or exc})") from None
    with fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for rep in reports:
            for row in rep.rows():
                w.writerow({"efficiency": rep.label, **row, "notes": "; ".join(row["notes"])})
            for row, reason in rep.skipped:
                w.writerow(
                    {
                        "efficiency": rep.label, "id": row.id, "line": row.line, "model": row.model,
                        "hardware": row.hardware, "metric": row.metric, "measured": row.value,
                        "notes": f"skipped: {reason}",
                    }
                )  # fmt: skip


def _calibration_from_args(args) -> tuple[Calibration, str]:
    if getattr(args, "params", None):
        return load_calibration(args.params), f"from {args.params}"
    return default_calibration(), "calibrated (shipped)"


def cmd_validate(args) -> int:
    data = read_measurements(args.data, skip_unknown=args.skip_unknown)
    prepared = prepare(data)
    engine = Engine(prepared.cases)
    sol = validate(prepared, Calibration.speed_of_light(), "speed of light", engine)
    if args.speed_of_light:
        primary, reports = sol, [sol]
    else:
        calib, label = _calibration_from_args(args)
        primary = validate(prepared, calib, label, engine)
        reports = [primary, sol]
    if args.csv:
        _write_csv(args.csv, reports)
    if args.json:
        out = {
            "file": prepared.path,
            "efficiency": primary.label,
            "rows": primary.rows(),
            "skipped": [
                {
                    "id": r.id,
                    "line": r.line,
                    "model": r.model,
                    "hardware": r.hardware,
                    "metric": r.metric,
                    "reason": reason,
                }
                for r, reason in prepared.skipped
            ],  # fmt: skip
            "summary": {
                rep.label: {"latency": rep.summary(False), "energy": rep.summary(True)} for rep in reports
            },
            "groups": primary.by_group(),
            "ratios": primary.ratio_errors(),
        }
        print(json.dumps(out, indent=2))
        return 0
    print(f"{prepared.path}: {len(prepared.cases)} rows modelled; efficiency: {primary.label}")
    _print_table(primary)
    _print_skipped(prepared.skipped)
    _print_groups(primary)
    if not args.speed_of_light:
        print(f"speed of light:    {format_summary(sol.summary(False))}")
        print(f"speed of light:    {format_summary(sol.summary(True), 'energy: ')}")
        print(f"{primary.label}:")
    print(format_summary(primary.summary(False)))
    print(format_summary(primary.summary(True), "energy: "))
    return 0


#: the leave-one-generation-out folds reported by ``hwgrad calibrate`` (proxies for the next
#: generation: H100 predicted from the A100-era rows, MI300X from MI250)
LOGO_FOLDS = ("nvidia-hopper", "amd-cdna3")


def cmd_calibrate(args) -> int:
    data = read_measurements(args.data, skip_unknown=args.skip_unknown)
    prepared = prepare(data)
    if not prepared.cases:
        raise ValueError(f"{args.data}: no row can be modelled, nothing to fit")
    settings = FitSettings(steps=args.steps)
    if args.no_priors:
        settings = dataclasses.replace(settings, priors=False)
    if args.shared_only:
        settings = dataclasses.replace(settings, levels=())
    engine = Engine(prepared.cases)
    fitter = Fitter(engine, settings)
    weights = row_weights(prepared.cases, settings.balance)
    params, seen, _ = fitter.optimise(weights)
    calib = fitter.calibration(params, seen, weights)
    fitted = validate(prepared, calib, "fitted", engine)
    sol = validate(prepared, Calibration.speed_of_light(), "speed of light", engine)
    header = [
        "Parameters fitted by `hwgrad calibrate` (hwgrad.calibrate.fit): hardware-family fractions",
        "([hardware.*], read by hwgrad.presets.chip) and serving-stack costs ([stack.*], hwgrad.presets.stack).",
        f"command: hwgrad calibrate {args.data} -o {args.output}"
        + (" --no-priors" if args.no_priors else "")
        + (" --shared-only" if args.shared_only else "")
        + (f" --steps {args.steps}" if args.steps != FitSettings.steps else "")
        + (" --no-cv" if args.no_cv else " --fast-cv" if args.fast_cv else ""),
        f"rows: {fitted.summary(False)['rows']} latency/throughput (fitted) + {fitted.summary(True)['rows']} "
        f"energy (predicted from the power physics, not fitted); skipped {len(prepared.skipped)}",
        "fitted (range): "
        + "; ".join(
            f"{p.key} [{p.lo:g}, {p.hi:g}] {p.unit} at {','.join(p.levels) or 'shared'}" for p in PARAMETERS
        ),
        f"fitted numbers: {fitter.fitted_numbers(weights)} "
        "(shared values + the offsets of the vendor lines and stacks that have rows)",
        f"loss: Cauchy on log(pred/measured), scale {settings.loss_scale:g}; rows weighted 1/sqrt(rows of their "
        f"hardware); Adam {settings.steps} steps; priors on offsets (shrinkage to the line / shared value)",
        f"in-sample:      {format_summary(fitted.summary(False))}",
        f"in-sample:      {format_summary(fitted.summary(True), 'energy: ')}",
        f"speed of light: {format_summary(sol.summary(False))}",
    ]
    header += _ratio_line("in-sample:     ", fitted)
    if not args.no_cv:
        cv_settings = dataclasses.replace(settings, steps=max(settings.steps // 2, 50))
        logo, _ = cross_validate(prepared, cv_settings, "generation", engine, only=LOGO_FOLDS)
        header.append(f"LOGO (hold out {', '.join(LOGO_FOLDS)}): {format_summary(logo.summary(False))}")
        for fold in LOGO_FOLDS:
            sub = _subset(logo, lambda c, fold=fold: c.hw_family == fold)
            header.append(f"  held out {fold}: {format_summary(sub.summary(False))}")
        # the hidden test's situation: a new chip on a stack the fit has seen elsewhere
        seen = _seen_elsewhere(logo, prepared, lambda c: c.hw_family)
        header.append(f"  stack seen on other generations: {format_summary(seen.summary(False))}")
        header += _ratio_line("LOGO:          ", logo)
        if not args.fast_cv:
            loho, _ = cross_validate(prepared, cv_settings, "hardware", engine)
            header.append(f"LOHO CV:        {format_summary(loho.summary(False))}")
            seen = _seen_elsewhere(loho, prepared, lambda c: c.row.hardware)
            header.append(f"  stack seen on other hardware: {format_summary(seen.summary(False))}")
            header += _ratio_line("LOHO CV:       ", loho)
            header += _ratio_line("  same stack on both parts:", loho, same_stack=True)
        header.append(f"(CV refits use {cv_settings.steps} Adam steps)")
    header += format_identification(identification(fitter, params, weights))
    try:
        write_calibration(args.output, calib, header)
    except OSError as exc:
        raise ValueError(f"-o {args.output}: cannot write ({exc.strerror or exc})") from None
    for line in header[3:]:
        print(line)
    _print_groups(fitted)
    print(f"wrote {args.output}")
    return 0


def _seen_elsewhere(report: Report, prepared, group) -> Report:
    """The rows of ``report`` whose stack family has rows in another ``group`` (a
    hardware slug or a generation of `prepared`'s cases): the ones a refit without their
    group still has a fitted profile for."""
    groups_of: dict[str, set[str]] = {}
    for c in prepared.cases:
        groups_of.setdefault(c.family, set()).add(group(c))
    return _subset(report, lambda c: bool(c.family) and len(groups_of[c.family] - {group(c)}) > 0)


def _ratio_stats(report: Report, same_stack: bool = False) -> tuple[float, float, int] | None:
    """Median and p90 (%) of ``report``'s matched-row speed-ratio errors and the number of
    pairs (``same_stack``: only the pairs whose two rows share a stack family, the chip-to-chip
    ratios of one stack); None without pairs."""
    ratios = report.ratio_errors()
    if same_stack:
        family = {c.row.id: c.family for c in report.cases}
        ratios = [r for r in ratios if family[r["ids"][0]] == family[r["ids"][1]]]
    if not ratios:
        return None
    e = np.asarray([r["error_pct"] for r in ratios])
    return float(np.median(e)), float(np.percentile(e, 90)), len(ratios)


def _ratio_line(label: str, report: Report, same_stack: bool = False) -> list[str]:
    """The header line of ``report``'s matched-row speed-ratio errors (none without pairs)."""
    if not (stats := _ratio_stats(report, same_stack)):
        return []
    median, p90, pairs = stats
    return [f"{label} speed-ratio error median {median:.1f}% | p90 {p90:.1f}% | pairs {pairs}"]


def _subset(report: Report, keep) -> Report:
    mask = np.asarray([bool(keep(c)) for c in report.cases])
    return Report(
        label=report.label,
        cases=tuple(c for c, k in zip(report.cases, mask, strict=True) if k),
        predicted=report.predicted[mask],
        measured=report.measured[mask],
        skipped=(),
    )


def register_cli(subparsers) -> None:
    """Add ``hwgrad validate`` and ``hwgrad calibrate`` to the ``hwgrad`` parser."""
    p = subparsers.add_parser(
        "validate",
        help="predict measured rows and report errors",
        description="Predict every row of a measurement CSV (calibration schema) and report the "
        "absolute percentage error per row, per stack x hardware family and for matched groups, "
        "with the calibrated and speed-of-light parameters.",
    )
    p.add_argument("data", metavar="DATA.csv", help="measurements in the calibration.csv schema")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--csv", metavar="OUT", help="also write per-row results to this CSV")
    p.add_argument(
        "--skip-unknown", action="store_true", help="leave out rows naming an unknown model/hardware"
    )
    p.add_argument("--params", metavar="FILE", help="calibration parameters (TOML from `hwgrad calibrate`)")
    p.add_argument("--speed-of-light", action="store_true", help="report the ideal roofline only")
    p.set_defaults(func=cmd_validate)

    c = subparsers.add_parser(
        "calibrate",
        help="fit hardware-family and serving-stack parameters to measurements",
        description="Fit hardware-family fractions and serving-stack costs to a measurement CSV by "
        "gradient descent through the model, with leave-one-generation-out and "
        "leave-one-hardware-out cross-validation.",
    )
    c.add_argument("data", metavar="DATA.csv", help="measurements in the calibration.csv schema")
    c.add_argument(
        "-o", "--output", required=True, metavar="params.toml", help="where to write the parameters"
    )
    c.add_argument(
        "--skip-unknown", action="store_true", help="leave out rows naming an unknown model/hardware"
    )
    c.add_argument("--steps", type=int, default=FitSettings.steps, help="Adam steps")
    c.add_argument("--shared-only", action="store_true", help="one shared set: no family/stack offsets")
    c.add_argument("--no-priors", action="store_true", help="no prior on the shared values")
    c.add_argument("--no-cv", action="store_true", help="skip the cross-validation")
    c.add_argument("--fast-cv", action="store_true", help="leave-one-generation-out folds only (no LOHO)")
    c.set_defaults(func=cmd_calibrate)


def main(argv=None) -> int:
    """``python -m hwgrad.calibrate``: only the ``validate`` and ``calibrate`` commands."""
    parser = argparse.ArgumentParser(prog="hwgrad")
    register_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)
