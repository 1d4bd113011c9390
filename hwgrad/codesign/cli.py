"""``hwgrad codesign``: parse, run the study, print."""

from __future__ import annotations

import os
from pathlib import Path

from ..cli import add_knob_arguments, knob_assignments
from .report import format_value, run_study
from .study import base_design, default_study, default_study_dict, load_study, read_study_file


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
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the study's base design (after --set and the knob flags) and its variables, "
        "and exit without optimising",
    )
    add_knob_arguments(p)
    p.set_defaults(func=cmd_codesign)
    p.epilog = (
        "--set and the hardware-knob flags change the study's base design (the fixed numbers and "
        "the starting point of the variables). With a [technology] table (the built-in study) "
        "the chip's memory, FLOPS, power and links are derived from the technology variables, "
        "calibrated on the base chip: setting them moves the start, not a fixed bound."
    )


def print_base_design(args, settings) -> None:
    """``--dry-run``: the study's name, base design and variables; nothing is compiled."""
    from .. import paths

    stack = getattr(args, "stack", None)
    if args.config:
        doc, text = read_study_file(args.config)
        specs = base_design(doc, args.config, text, Path(args.config).parent, stack, settings)
    else:
        doc = default_study_dict()
        specs = base_design(doc, "<default study>", stack=stack, settings=settings)
    system, wl, comp = specs["system"], specs["workload"], specs["compression"]
    tier = system.chip.tiers[0]
    net = system.network
    print(doc.get("study", {}).get("name", "study"))
    print(
        f"  base design: {float(system.n_chips):g} chips, tp {float(wl.tp):g}, batch {float(wl.batch):g}, "
        f"prompt {float(wl.prompt_len):g}, output {float(wl.output_len):g} tokens; "
        f"weights {float(comp.weight_bits):g} bit, KV {float(comp.kv_bits):g} bit"
    )
    print(
        f"  HBM {float(tier.bandwidth_bytes_per_s) / 1e12:.4g} TB/s, {float(tier.capacity_bytes) / 1e9:.4g} GB per chip; "
        f"links {float(net.link_bandwidth_bytes_per_s) / 1e9:.4g} GB/s, hop latency {float(net.hop_latency_s) * 1e6:.4g} us"
    )
    for path, _ in settings:
        print(f"  set: {path} = {float(paths.get(specs, path)):g}")
    for v in doc.get("variables", []):
        names = v["path"] if isinstance(v["path"], str) else " = ".join(v["path"])
        print(f"  variable {v.get('name') or names}: [{v['min']:g}, {v['max']:g}]")


def cmd_codesign(args) -> int:
    from ..cli import enable_compile_cache

    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps {args.steps}: must be >= 1")
    settings = knob_assignments(args)
    if args.dry_run:
        print_base_design(args, settings)
        return 0
    enable_compile_cache()
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
    study = (
        load_study(args.config, stack=stack, settings=settings)
        if args.config
        else default_study(stack=stack, settings=settings)
    )
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
