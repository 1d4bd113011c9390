"""Regenerate every artifact into experiments/out/ (``make figures``).

python experiments/run_all.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402

SCRIPTS = (
    "a01_memory_wall",
    "a02_hbm_generations",
    "a03_memory_cost",
    "a04_memory_tech",
    "a05_trends_heatmap",
    "a06_prefill_decode",
    "a07_hbf",
    "a08_pnm_pim",
    "a09_stacking",
    "a10_interconnect",
    "a11_perf_metrics",
    "a12_mobile",
    "a13_codesign",
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=c.DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in (bar := tqdm(SCRIPTS, unit="artifact")):
        bar.set_description(name)
        mod = importlib.import_module(name)
        print(f"\n[{name}]")
        mod.compute(args.out, quick=args.quick)
        mod.plot(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
