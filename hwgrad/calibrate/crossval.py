"""Cross-validation: refit with a group of rows left out and predict it.

Leave one hardware out (LOHO) and leave one architecture generation out (LOGO, the honest
proxy for predicting the next generation of hardware on the same stacks): each fold refits
the parameters on the other rows (:mod:`hwgrad.calibrate.fit`) and reports the held-out rows'
errors (:mod:`hwgrad.calibrate.report`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .cases import Engine, Prepared
from .fit import FitSettings, Fitter, row_weights
from .parameters import Calibration
from .report import Report

CV_GROUPS = {
    "hardware": lambda c: c.row.hardware,
    "generation": lambda c: c.hw_family,
    "line": lambda c: c.hw_line,
}


def cross_validate(
    prepared: Prepared,
    settings: FitSettings = FitSettings(),
    group: str = "hardware",
    engine: Engine | None = None,
    only: Sequence[str] | None = None,
) -> tuple[Report, dict[str, Calibration]]:
    """Leave-one-group-out cross-validation.

    For each group (a hardware slug, an architecture generation, or a vendor line), refit
    on the other rows and predict the held-out ones; the returned :class:`Report` holds
    these out-of-sample predictions.

    Args:
      group: a key of :data:`CV_GROUPS`.
      only: hold out only these groups (e.g. ``["nvidia-hopper", "amd-cdna3"]``: predict
        H100 from the A100-era rows, MI300X from MI250).
    """
    if group not in CV_GROUPS:
        raise ValueError(f"group = {group!r}: use one of {', '.join(CV_GROUPS)}")
    engine = engine or Engine(prepared.cases)
    fitter = Fitter(engine, settings)
    base = row_weights(prepared.cases, settings.balance)
    keys = [CV_GROUPS[group](c) for c in prepared.cases]
    predicted = np.full(engine.n_rows, np.nan)
    fits = {}
    for key in dict.fromkeys(keys):
        if only is not None and key not in only:
            continue
        held = np.asarray([k == key for k in keys])
        if held.all():
            continue
        calib, _ = fitter.run(np.where(held, 0.0, base))
        fits[key] = calib
        predicted[held] = engine.predict(calib)[held]
    ok = np.isfinite(predicted)
    report = Report(
        label=f"leave-one-{group}-out",
        cases=tuple(c for c, k in zip(prepared.cases, ok, strict=True) if k),
        predicted=predicted[ok],
        measured=engine.measured[ok],
        skipped=prepared.skipped,
    )
    return report, fits
