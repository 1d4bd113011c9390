"""``hwgrad codesign``: parse, run the study, print."""

from __future__ import annotations

import os
from pathlib import Path

from .report import format_value, run_study
from .study import default_study, load_study


def register_cli(subparsers) -> None:
    p = subparsers.add_parser(
        "codesign",
        help="gradient co-design of hardware and compression",
        description="Co-optimise hardware knobs and compression under latency, accuracy and capacity budgets.",
    )
    p.add_argument(
        "--config", metavar="STUDY.toml", help="study file (default: the built-in Llama-3.1-70B study)"
    )
    p.add_argument("--out", default="out/codesign", help="output directory (default out/codesign)")
    p.add_argument(
        "--stack",
        metavar="NAME",
        help="serving stack of the study (default: the study's, else tuned); "
        "names: `hwgrad presets stacks` (ideal, tuned, vllm, tensorrt-llm, sglang, ...)",
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--steps", type=int, help="optimiser steps (default: the study's)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_codesign)


def cmd_codesign(args) -> int:
    from ..cli import enable_compile_cache

    enable_compile_cache()
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps {args.steps}: must be >= 1")
    out = Path(args.out)
    blocked = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        raise ValueError(f"--out {out}: {blocked} is a file, not a directory; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--out {out}: cannot create the directory ({exc.strerror or exc})") from None
    if not os.access(out, os.W_OK):
        raise ValueError(f"--out {out}: the directory is not writable; choose another --out")
    stack = getattr(args, "stack", None)
    study = load_study(args.config, stack=stack) if args.config else default_study(stack=stack)
    res = run_study(study, args.out, resume=args.resume, steps=args.steps, progress=not args.no_progress)
    d = res["design"]
    name = study.problem.objective.weights[0][0]
    print(f"{study.name}")
    for v in study.problem.variables:
        print(
            f"  {v.name:<44} {format_value(res['start'].values[v.name]):>14} -> {format_value(d.values[v.name])}"
        )
    print(
        f"  {name}: {res['start'].objective:.4g} at the start -> {d.objective:.4g} "
        f"(TPOT {1e3 * float(d.metrics['tpot_s']):.3g} ms, delta ppl {float(d.metrics['delta_ppl']):.3g})"
    )
    for r in res["comparison"]:
        if r["usd"] is None:
            print(f"  {r['system']:<16} {r['compression']:<17} infeasible at this service level")
        else:
            print(
                f"  {r['system']:<16} {r['compression']:<17} {r['usd']:.4g} at batch {r['batch']} "
                f"({r['usd'] / d.objective:.2f}x the co-designed design)"
            )
    print(
        f"  binding: {', '.join(d.binding) or 'none'}; at a bound: {', '.join(d.at_bound) or 'none'}; wrote {args.out}/report.md, trajectory.csv, pareto.csv, codesign.png"
    )
    if not d.feasible:
        raise ValueError(d.report)
    return 0
