"""Validation reports: predict every row and summarise the absolute percentage errors.

``APE = 100 |predicted - measured| / measured`` per row; a `Report` summarises it by
median, 90th percentile and max, overall, per stack x hardware family and for matched groups,
and `format_summary` prints the stable one-line summary
``median APE x% | p90 APE y% | ... | rows N`` that ``hwgrad validate`` ends with.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..measurements import Measurement
from .cases import Case, Engine, Prepared
from .parameters import Calibration


def ape(predicted, measured) -> np.ndarray:
    """Absolute percentage error ``100 |predicted - measured| / measured``."""
    predicted = np.asarray(predicted, dtype=float)
    measured = np.asarray(measured, dtype=float)
    return 100.0 * np.abs(predicted - measured) / measured


def ape_summary(errors, skipped: int = 0) -> dict:
    """Median, 90th percentile (linear interpolation) and max of APEs, with counts."""
    e = np.asarray(errors, dtype=float)
    if e.size == 0:
        return {
            "median_ape": math.nan,
            "p90_ape": math.nan,
            "max_ape": math.nan,
            "rows": 0,
            "skipped": skipped,
        }
    return {
        "median_ape": float(np.median(e)),
        "p90_ape": float(np.percentile(e, 90)),
        "max_ape": float(np.max(e)),
        "rows": int(e.size),
        "skipped": int(skipped),
    }


def format_summary(summary: dict, prefix: str = "") -> str:
    """``median APE 12.3% | p90 APE 30.1% | max APE 80.2% | rows 86 | skipped 0``."""

    def pct(x):
        return "n/a" if not math.isfinite(x) else f"{x:.1f}%"

    return (
        f"{prefix}median APE {pct(summary['median_ape'])} | p90 APE {pct(summary['p90_ape'])} | "
        f"max APE {pct(summary['max_ape'])} | rows {summary['rows']} | skipped {summary['skipped']}"
    )


@dataclasses.dataclass(frozen=True)
class Report:
    """Predictions for every modelled row, the skipped rows, and summaries.

    ``summary(False)`` summarises tpot / e2e / throughput rows, ``summary(True)`` the
    energy rows; the ``skipped`` counts split the skipped rows the same way.
    """

    label: str
    cases: tuple[Case, ...]
    predicted: np.ndarray
    measured: np.ndarray
    skipped: tuple[tuple[Measurement, str], ...]

    @property
    def errors(self) -> np.ndarray:
        return ape(self.predicted, self.measured)

    @property
    def signed_errors(self) -> np.ndarray:
        return 100.0 * (np.asarray(self.predicted) - self.measured) / self.measured

    def _mask(self, energy: bool) -> np.ndarray:
        return np.asarray([c.row.is_energy == energy for c in self.cases], dtype=bool)

    def summary(self, energy: bool = False) -> dict:
        skipped = sum(1 for row, _ in self.skipped if row.is_energy == energy)
        return ape_summary(self.errors[self._mask(energy)], skipped)

    def by_group(self) -> list[dict]:
        """Median / p90 APE and median signed error per (stack family, hardware family)."""
        groups: dict[tuple[str, str], list[int]] = {}
        for i, c in enumerate(self.cases):
            groups.setdefault((c.family or "(unrecognised)", c.hw_family), []).append(i)
        out = []
        for (stack, hw), idx in sorted(groups.items()):
            e, s = self.errors[idx], self.signed_errors[idx]
            out.append(
                {
                    "stack": stack,
                    "hardware_family": hw,
                    "rows": len(idx),
                    "median_ape": float(np.median(e)),
                    "p90_ape": float(np.percentile(e, 90)),
                    "median_signed_pct": float(np.median(s)),
                }
            )
        return out

    def ratio_errors(self) -> list[dict]:
        """Matched groups: rows identical but for the hardware (same source, model, layout
        class, lengths, dtypes, metric); for each pair, the error of the predicted speed
        ratio against the measured one, ``100 |pred_a/pred_b / (meas_a/meas_b) - 1|``."""
        groups: dict[tuple, list[int]] = {}
        for i, c in enumerate(self.cases):
            r = c.row
            key = (
                r.source.split()[0] if r.source else "", r.model, r.batch, r.batching, r.input_len,
                r.output_len, r.weight_dtype, r.kv_dtype, r.metric,
            )  # fmt: skip
            groups.setdefault(key, []).append(i)
        out = []
        for idx in groups.values():
            hws = {self.cases[i].row.hardware for i in idx}
            if len(hws) < 2:
                continue
            for a in idx:
                for b in idx:
                    ra, rb = self.cases[a].row, self.cases[b].row
                    if ra.hardware >= rb.hardware:
                        continue
                    pred = self.predicted[a] / self.predicted[b]
                    meas = self.measured[a] / self.measured[b]
                    out.append(
                        {
                            "ids": (ra.id, rb.id),
                            "hardware": (ra.hardware, rb.hardware),
                            "model": ra.model,
                            "measured_ratio": float(meas),
                            "predicted_ratio": float(pred),
                            "error_pct": float(100.0 * abs(pred / meas - 1.0)),
                        }
                    )
        return out

    def rows(self) -> list[dict]:
        out = []
        for case, p, m, e in zip(self.cases, self.predicted, self.measured, self.errors, strict=True):
            r = case.row
            out.append(
                {
                    "id": r.id,
                    "line": r.line,
                    "model": r.model,
                    "hardware": r.hardware,
                    "n_chips": r.n_chips,
                    "tp": r.tp,
                    "batch": r.batch,
                    "batching": r.batching,
                    "input_len": r.input_len,
                    "output_len": r.output_len,
                    "weight_dtype": r.weight_dtype,
                    "metric": r.metric,
                    "software": r.software,
                    "stack": case.family,
                    "hardware_family": case.hw_family,
                    "measured": float(m),
                    "predicted": float(p),
                    "ape": float(e),
                    "signed_error_pct": float(100.0 * (p - m) / m),
                    "notes": list(case.notes),
                }
            )
        return out


def predict(prepared: Prepared, calibration: Calibration, engine: Engine | None = None) -> np.ndarray:
    """Predicted value of every case of ``prepared`` (metric units)."""
    engine = engine or Engine(prepared.cases)
    return engine.predict(calibration)


def _note_default_stack(case: Case, calibration: Calibration) -> Case:
    if calibration.has_profile(case.family):
        return case
    what = f"stack {case.family} has no fitted profile" if case.family else "software not recognised"
    return dataclasses.replace(case, notes=(*case.notes, f"{what}: default stack used"))


def validate(
    prepared: Prepared, calibration: Calibration, label: str = "", engine: Engine | None = None
) -> Report:
    """Predict every row and compare with the measurements (see `Report`). A row whose
    stack has no fitted profile in ``calibration`` (software not recognised, or a family
    without calibration rows) is predicted with the ``default`` stack, and its notes say so."""
    engine = engine or Engine(prepared.cases)
    return Report(
        label=label,
        cases=tuple(_note_default_stack(c, calibration) for c in prepared.cases),
        predicted=engine.predict(calibration),
        measured=engine.measured,
        skipped=prepared.skipped,
    )
