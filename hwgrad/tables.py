"""Results as pandas DataFrames, where users expect tables.

pandas is optional (``pip install hwgrad[pandas]``); everything else in hwgrad returns
pytrees, dicts and numpy arrays.

    import hwgrad as hg
    hg.tables.to_dataframe(hg.evaluate(...))          # one row: metrics + per-tier columns
    hg.tables.to_dataframe(sweep.run(design, space))  # one row per design point
    hg.tables.to_dataframe(sweep.sensitivity(...))    # metric, knob, elasticity
    hg.tables.to_dataframe(calibrate.validate(...))   # one row per measurement
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def _pandas():
    try:
        import pandas as pd
    except ModuleNotFoundError:
        raise ValueError("to_dataframe needs pandas: pip install 'hwgrad[pandas]'") from None
    return pd


def result_record(result) -> dict:
    """A flat dict of a `hwgrad.cost.Result`: scalar metrics, per-tier capacity
    columns (``capacity_used_bytes.0``...) and the decode step's component times."""
    from .cost import COMPONENTS

    rec: dict = {}
    for name in type(result).__dataclass_fields__:
        value = getattr(result, name)
        if name in ("decode", "prefill"):
            times = np.asarray(value.component_times())
            for comp, t in zip(COMPONENTS, times, strict=True):
                rec[f"{name}.{comp}_s"] = float(t)
            rec[f"{name}.time_s"] = float(value.time_s)
            continue
        arr = np.asarray(value)
        if arr.ndim == 0:
            rec[name] = float(arr)
        else:
            for i, v in enumerate(arr):
                rec[f"{name}.{i}"] = float(v)
    return rec


def to_dataframe(obj):
    """A pandas DataFrame of a Result, a list of Results, a sweep's column dict, a
    sensitivity analysis or a validation report."""
    pd = _pandas()
    from .cost import Result

    if isinstance(obj, Result):
        return pd.DataFrame([result_record(obj)])
    if isinstance(obj, list | tuple) and obj and all(isinstance(r, Result) for r in obj):
        return pd.DataFrame([result_record(r) for r in obj])
    if isinstance(obj, Mapping):
        return pd.DataFrame({k: np.asarray(v) for k, v in obj.items()})
    if hasattr(obj, "rows") and hasattr(obj, "elasticity"):  # sweep.Sensitivity
        return pd.DataFrame(obj.rows(), columns=["metric", "knob", "elasticity"])
    if hasattr(obj, "rows") and hasattr(obj, "errors"):  # calibrate.Report
        return pd.DataFrame(obj.rows())
    raise ValueError(
        f"to_dataframe: cannot tabulate a {type(obj).__name__}; give a Result, a list of Results, "
        "sweep columns, a sensitivity analysis or a validation report"
    )
