"""The shipped, calibrated efficiency parameters (``presets/data/efficiency.toml``).

``hwgrad calibrate`` writes files in the same format; ``--params FILE`` loads one.
"""

from __future__ import annotations

import functools
import tomllib
from importlib import resources
from pathlib import Path

from .specs import Efficiency

_FIELDS = tuple(Efficiency.__dataclass_fields__)


def load_efficiency(path: str | Path) -> Efficiency:
    """Read an :class:`Efficiency` from the ``[efficiency]`` table of a TOML file."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: cannot read efficiency parameters ({exc})") from None
    return efficiency_from_mapping(doc.get("efficiency", {}), where=str(path))


def efficiency_from_mapping(values: dict, where: str = "efficiency") -> Efficiency:
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise ValueError(f"{where}: unknown efficiency field(s) {unknown}; known: {', '.join(_FIELDS)}")
    for key, val in values.items():
        if not isinstance(val, int | float) or isinstance(val, bool):
            raise ValueError(f"{where}: efficiency.{key} = {val!r} is not a number")
    return Efficiency(**{k: float(v) for k, v in values.items()})


@functools.cache
def calibrated_efficiency() -> Efficiency:
    """The default parameter set: fitted to ``calibration.csv`` (see docs/calibration.md)."""
    path = resources.files("hwgrad.presets") / "data" / "efficiency.toml"
    return load_efficiency(Path(str(path)))
