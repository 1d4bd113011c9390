"""The shipped serving-stack defaults and parameter files for ``--params``.

``hwgrad calibrate`` writes ``presets/data/calibration.toml``: hardware-family fractions
(read by `hwgrad.presets.chip`) and fitted stacks (`hwgrad.presets.stack`). The
default stack of every evaluation and design study is ``tuned`` (what the best stack in the
data achieves); ``--params FILE`` loads a file written by ``hwgrad calibrate`` (its
``tuned`` stack) or a plain ``[efficiency]`` / ``[stack]`` table of `Stack` fields.
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path

from .specs import Stack

#: the numeric fields a ``[stack]`` table may set (the collective library goes by name)
_NUMBERS = tuple(f for f in Stack.__dataclass_fields__ if f != "collective_bandwidth_fraction")


def load_efficiency(path: str | Path, name: str = "tuned", hardware: str | None = None) -> Stack:
    """Read a `Stack` from a TOML file: the ``[stack."<name>"]`` table of a
    calibration file (``tuned`` with a chip preset ``hardware``: the file's
    ``tuned/<vendor line>`` table when it has one), or a plain ``[efficiency]`` /
    ``[stack]`` table of Stack fields."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: cannot read efficiency parameters ({exc})") from None
    table = doc.get("stack", {})
    if name == "tuned" and isinstance(table, dict):
        from .presets import tuned_name

        name = tuned_name(hardware, [k for k, v in table.items() if isinstance(v, dict)])
    if isinstance(table, dict) and isinstance(table.get(name), dict):
        return efficiency_from_mapping(table[name], where=f"{path} [stack.{name}]")
    if isinstance(table, dict) and table and all(not isinstance(v, dict) for v in table.values()):
        return efficiency_from_mapping(table, where=f"{path} [stack]")
    values = doc.get("efficiency", {})
    if not isinstance(values, dict):
        raise ValueError(f"{path}: [efficiency] must be a table of numbers")
    return efficiency_from_mapping(values, where=str(path))


def efficiency_from_mapping(values: dict, where: str = "efficiency") -> Stack:
    """A `Stack` from a table of its numeric fields; ``collective`` names its collective
    library (an entry of `hwgrad.network.COLLECTIVE_IMPLEMENTATIONS`)."""
    from .network import implementation

    values = dict(values)
    collective = values.pop("collective", None)
    fractions = values.pop("collective_bandwidth_fraction", None)
    if fractions is not None and (
        not isinstance(fractions, list)
        or len(fractions) != 5
        or not all(isinstance(x, int | float) and not isinstance(x, bool) and 0 <= x <= 1 for x in fractions)
    ):
        raise ValueError(
            f"{where}: collective_bandwidth_fraction = {fractions!r}: give five numbers in [0, 1] "
            "(ring, tree, in_network, one_shot, two_shot) or name a library with collective = \"...\""
        )
    unknown = sorted(set(values) - set(_NUMBERS))
    if unknown:
        raise ValueError(
            f"{where}: unknown field(s) {unknown}; known: {', '.join((*_NUMBERS, 'collective'))}"
        )
    for key, val in values.items():
        if not isinstance(val, int | float) or isinstance(val, bool):
            raise ValueError(f"{where}: {key} = {val!r} is not a number")
    out = {k: float(v) for k, v in values.items()}
    if fractions is not None:
        out["collective_bandwidth_fraction"] = tuple(float(x) for x in fractions)
    if collective is not None:
        try:
            out["collective_bandwidth_fraction"] = implementation(collective).fractions
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    return Stack(**out)


@functools.cache
def calibrated_efficiency(hardware: str | None = None) -> Stack:
    """The default serving stack: the fitted ``tuned`` stack (see docs/calibration.md) - the
    best stack in the data on the vendor line of the chip preset ``hardware``, or across
    vendors when none is named (specs carry no names, so `hwgrad.evaluate` without an
    ``efficiency`` cannot know the vendor: pass ``calibrated_efficiency("h100-sxm")``)."""
    from . import presets

    try:
        return presets.stack("tuned", hardware)
    except ValueError:
        return Stack.ideal()
