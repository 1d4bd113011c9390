"""Predicted vs measured decode performance: the validation figure of docs/calibration.md.

``compute()`` predicts every row of a measurement file (default: the shipped
``calibration.csv``) with the shipped calibrated parameters, with the speed-of-light roofline
and, out of sample, with leave-one-hardware-out refits (LOHO), and writes one CSV row per
(measurement, parameter set). ``plot()`` reads that CSV and draws a log-log
predicted-vs-measured scatter per metric with the y = x line and a +/-25 % band.

    python experiments/validation_plot.py                 # all three, writes CSV + PNG
    python experiments/validation_plot.py --quick         # no LOHO refits (smoke test)
    python experiments/validation_plot.py --data other.csv --out DIR --skip-unknown
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from hwgrad import calibrate as cb
from hwgrad.measurements import METRICS, read_measurements

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "hwgrad" / "presets" / "data" / "calibration.csv"
OUT_DIR = ROOT / "experiments" / "out"
CSV_NAME = "validation.csv"
PNG_NAME = "validation.png"

FIELDS = (
    "parameters", "id", "model", "hardware", "software", "metric", "batch", "tp",
    "measured", "predicted", "ape", "notes",
)  # fmt: skip


def compute(
    data: Path = DATA, out_dir: Path = OUT_DIR, quick: bool = False, skip_unknown: bool = False
) -> Path:
    """Predict every row three ways and write ``out_dir/validation.csv``; return its path."""
    prepared = cb.prepare(read_measurements(data, skip_unknown=skip_unknown))
    engine = cb.Engine(prepared.cases)
    reports = [
        cb.validate(prepared, cb.default_calibration(), "calibrated", engine),
        cb.validate(prepared, cb.Calibration.speed_of_light(), "speed of light", engine),
    ]
    if not quick:
        cv, _ = cb.cross_validate(prepared, engine=engine)
        reports.append(cv)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / CSV_NAME
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        w.writeheader()
        for rep in reports:
            for r in rep.rows():
                w.writerow({k: r[k] for k in FIELDS if k in r} | {
                    "parameters": rep.label, "notes": "; ".join(r["notes"]),
                })  # fmt: skip
        for row, reason in prepared.skipped:
            w.writerow({"parameters": "skipped", "id": row.id, "model": row.model, "hardware": row.hardware,
                        "metric": row.metric, "measured": row.value, "notes": reason})  # fmt: skip
    for rep in reports:
        print(f"{rep.label:<26} {cb.format_summary(rep.summary(False))}")
        print(f"{'':<26} {cb.format_summary(rep.summary(True), 'energy: ')}")
    print(f"wrote {path}")
    return path


def _family(hardware: str) -> str:
    if hardware.startswith("apple"):
        return "Apple M-series"
    return hardware


def plot(csv_path: Path, out_dir: Path | None = None) -> Path:
    """Draw the log-log predicted-vs-measured figure from `compute`'s CSV."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with csv_path.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["parameters"] != "skipped"]
    labels = list(dict.fromkeys(r["parameters"] for r in rows))
    styles = {"calibrated": ("o", "C0"), "speed of light": ("x", "C3"), "leave-one-hardware-out": ("^", "C2")}
    metrics = [m for m in METRICS if any(r["metric"] == m for r in rows)]
    ncols = min(2, len(metrics))
    nrows = -(-len(metrics) // ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 4.4 * nrows), squeeze=False)
    axes = [list(grid.flat)]
    for ax in axes[0][len(metrics) :]:
        ax.set_visible(False)
    families = sorted({_family(r["hardware"]) for r in rows})
    fills = {f: ("full" if i == 0 else "none") for i, f in enumerate(families)}
    for ax, metric in zip(axes[0], metrics, strict=False):
        sub = [r for r in rows if r["metric"] == metric]
        values = [float(r[k]) for r in sub for k in ("measured", "predicted")]
        lo, hi = min(values) / 1.5, max(values) * 1.5
        ax.fill_between([lo, hi], [lo / 1.25, hi / 1.25], [lo * 1.25, hi * 1.25], color="0.9", label="±25 %")
        ax.plot([lo, hi], [lo, hi], color="0.4", lw=0.8)
        for label in labels:
            marker, color = styles.get(label, ("s", "C4"))
            pts = [r for r in sub if r["parameters"] == label]
            for fam in families:
                fam_pts = [r for r in pts if _family(r["hardware"]) == fam]
                if not fam_pts:
                    continue
                ax.plot(
                    [float(r["measured"]) for r in fam_pts],
                    [float(r["predicted"]) for r in fam_pts],
                    marker,
                    color=color,
                    ms=4,
                    alpha=0.8,
                    fillstyle=fills[fam] if marker != "x" else "full",
                    ls="none",
                    label=f"{label}" if fam == families[0] else None,
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        unit = METRICS[metric]
        ax.set_xlabel(f"measured {metric} [{unit}]")
        ax.set_ylabel(f"predicted [{unit}]")
        ax.set_title(metric)
        ax.grid(True, which="both", lw=0.3, alpha=0.5)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(names), frameon=False)
    fig.suptitle(
        "hwgrad vs measured decode performance (filled: " + families[0] + ", open: other hardware)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    out = (out_dir or csv_path.parent) / PNG_NAME
    fig.savefig(out, dpi=130)
    plt.close(fig)
    print(f"wrote {out}")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="measurements (calibration.csv schema)")
    parser.add_argument(
        "--out", type=Path, default=OUT_DIR, help="output directory (default experiments/out)"
    )
    parser.add_argument("--quick", action="store_true", help="skip the leave-one-hardware-out refits")
    parser.add_argument(
        "--skip-unknown", action="store_true", help="leave out rows with unknown model/hardware"
    )
    args = parser.parse_args(argv)
    path = compute(args.data, args.out, quick=args.quick, skip_unknown=args.skip_unknown)
    plot(path, args.out)


if __name__ == "__main__":
    main()
