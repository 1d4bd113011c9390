"""The ``hwgrad sweep`` command: a sweep file in, a streamed, resumable output file out.

``hwgrad sweep --config FILE`` reads a sweep file (`hwgrad.config.load_sweep`: the design
point as ``hwgrad eval`` flags, the space, metrics, an optional Pareto filter), checks every
axis path, metric and point before anything compiles, splits the CPU into one device per core
(`set_cpu_devices`), optionally joins a multi-host job
(``jax.distributed``), and streams the sweep with `run_to_file`. The
sibling ``hwgrad sensitivity`` lives in `hwgrad.sensitivity` and is registered with it.
"""

from __future__ import annotations

import json
import sys

import jax

from ..config import load_sweep
from ..design import as_design, result_index
from ..paths import Index
from .evaluate import set_cpu_devices
from .files import run_to_file
from .spaces import validate_space

__all__ = ["register_cli", "cmd_sweep"]


def register_cli(subparsers) -> None:
    """Add ``hwgrad sweep`` and ``hwgrad sensitivity`` (`hwgrad.sensitivity.register_cli`)."""
    from ..cli import add_design_arguments, positive_int  # one argparse type for every subcommand

    p = subparsers.add_parser(
        "sweep",
        help="evaluate a grid or random sample of designs, streamed to CSV/Parquet",
        description="Evaluate a grid or a random sample over any design leaves (see docs/sweep.md), "
        "sharded over all devices, streamed chunk by chunk, resumable.",
    )
    p.add_argument(
        "--config", metavar="FILE", help="sweep file (TOML: [design], [sweep], [[axis]]); or give the space inline"
    )
    p.add_argument(
        "--space",
        action="append",
        metavar="PATH=LO:HI:N",
        help="an axis of an inline grid (no file): PATH=LO:HI:N[:log] or PATH=V1,V2,...; PATH is a design "
        "path (SI units, or give the unit: 2TB/s) or a knob flag name in its unit (hbm-bandwidth=2:10:5 in TB/s, "
        "hop-latency=0.5:5:4 in us); repeatable; the design point comes from the flags below",
    )
    p.add_argument(
        "--metric", action="append", metavar="NAME",
        help="inline sweeps: metric(s) to write (default: the headline metrics; with --rate the service's first)",
    )  # fmt: skip
    p.add_argument("--out", metavar="FILE", help="output .csv or .parquet (default: [sweep].out)")
    p.add_argument(
        "--resume", action="store_true", help="continue an interrupted sweep (finished chunks are kept)"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite an existing output (only one hwgrad wrote: with a manifest)",
    )
    p.add_argument(
        "--allow-out-anywhere", action="store_true",
        help="accept a [sweep].out that leaves the config's directory (.. or an absolute path)",
    )  # fmt: skip
    p.add_argument(
        "--chunk-size", type=positive_int, help="points per chunk (default [sweep].chunk_size or 65536)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--cpu-devices", type=positive_int, metavar="N",
        help="split the CPU into N jax devices (default: one per usable core, unless XLA_FLAGS sets a count); "
        "one CPU device runs the sweep on one core, and results do not depend on N",
    )  # fmt: skip
    g = p.add_argument_group("multi-host (jax.distributed)")
    g.add_argument(
        "--coordinator", metavar="HOST:PORT", help="address of process 0 (calls jax.distributed.initialize)"
    )
    g.add_argument("--num-processes", type=positive_int, help="processes in the job")
    g.add_argument("--process-id", type=int, help="this process's rank, 0 .. num-processes - 1")
    g.add_argument(
        "--distributed", action="store_true", help="jax.distributed.initialize() with cluster auto-detection"
    )
    add_design_arguments(p, config=False)
    from ..service import add_service_arguments

    add_service_arguments(p)  # --rate: sweep a served design (goodput_rps, ttft_pct_s, ... columns)
    p.set_defaults(func=cmd_sweep, config_is_design=False)
    from .. import sensitivity

    sensitivity.register_cli(subparsers)


def _init_distributed(args) -> None:
    if args.coordinator or args.distributed:
        if args.coordinator and (args.num_processes is None or args.process_id is None):
            raise ValueError("--coordinator needs --num-processes and --process-id (e.g. 2 and 0)")
        if (
            args.process_id is not None
            and args.num_processes is not None
            and not 0 <= args.process_id < args.num_processes
        ):
            raise ValueError(f"--process-id {args.process_id}: must lie in 0 .. {args.num_processes - 1}")
        if args.coordinator:
            jax.distributed.initialize(
                coordinator_address=args.coordinator,
                num_processes=args.num_processes,
                process_id=args.process_id,
            )
        else:
            jax.distributed.initialize()


def _inline_sweep(args) -> dict:
    """The sweep of ``--space`` axes around the design point of the design flags (no file)."""
    from ..cli import design_from_args, parse_axis
    from ..design import default_metrics
    from ..specs import Options
    from .spaces import Axis, grid

    design = design_from_args(args)
    space = grid(*(Axis(**parse_axis(text)) for text in args.space))
    return dict(
        design=design, space=space, metrics=tuple(args.metric) if args.metric else default_metrics(design),
        chunk_size=65536, batch_size=512, out=None, out_inside=True, pareto=None, feasible_only=False,
        options=Options(),
    )  # fmt: skip


def cmd_sweep(args) -> int:
    from ..cli import enable_compile_cache

    set_cpu_devices(args.cpu_devices)
    _init_distributed(args)
    enable_compile_cache()
    from ..cli import apply_assignments, knob_assignments

    if args.config:
        if args.space:
            raise ValueError("--space and --config both define the space: give one of them")
        cfg = load_sweep(args.config)
        cfg["design"] = apply_assignments(cfg["design"], knob_assignments(args))
    elif args.space:
        cfg = _inline_sweep(args)
    else:
        raise ValueError(
            "no space: pass --config FILE, or inline axes such as --space hbm-bandwidth=2:10:5 --out out.csv"
        )
    out = args.out or cfg["out"]
    if out is None:
        raise ValueError("no output file: pass --out FILE.csv or set [sweep].out in the config")
    if not args.out and not cfg["out_inside"] and not args.allow_out_anywhere:
        raise ValueError(
            f"{args.config} [sweep].out resolves to {out}, outside the config's directory: pass --out on the "
            "command line, or --allow-out-anywhere to accept the config's path"
        )
    validate_space(cfg["design"], cfg["space"])
    _validate_names(cfg["design"], cfg, args.config or "--space")
    try:
        summary = run_to_file(
            cfg["design"], cfg["space"], out, cfg["metrics"], chunk_size=args.chunk_size or cfg["chunk_size"],
            pareto=cfg["pareto"], feasible_only=cfg["feasible_only"], resume=args.resume, overwrite=args.force,
            options=cfg["options"], batch_size=cfg["batch_size"], progress=not args.no_progress,
        )  # fmt: skip
    except KeyboardInterrupt:
        print(
            f"hwgrad sweep: finished chunks are kept in {out}; rerun with --resume to continue",
            file=sys.stderr,
        )
        raise
    if jax.process_index() != 0:
        return 0
    if args.json:
        print(json.dumps(summary, indent=2))
    elif summary["points"] == 0:
        print(f"{summary['out']}: already complete ({summary['rows']:,} rows, {summary['n_chunks']} chunks)")
    else:
        print(
            f"{summary['rows']:,} rows in {summary['out']}: {summary['points']:,} points in {summary['seconds']:.1f} s "
            f"({summary['points_per_s']:.3g} points/s including compile, {jax.device_count()} device(s))"
            + (
                f"; {summary['chunks_skipped']} of {summary['n_chunks']} chunks were already done"
                if summary["chunks_skipped"]
                else ""
            )
        )
    return 0


def _validate_names(d: dict, cfg: dict, where: str) -> None:
    """Resolve every axis path and metric once, before any compile (clean errors)."""
    index = Index(as_design(d))
    for a in cfg["space"].axes:
        try:
            index.resolve(a.path, "axis path")
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    out_index = result_index(as_design(d), cfg["options"])
    metrics = list(cfg["metrics"]) + (list(cfg["pareto"].objectives) if cfg["pareto"] else [])
    for m in metrics:
        try:
            out_index.resolve(m, "metric")
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
