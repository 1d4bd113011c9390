"""Reading measured decode performance in the calibration schema.

The schema is the one of ``presets/data/calibration.csv`` (see ``presets/data/README.md``):
one measurement per row, with the model and hardware as preset slugs, the parallel layout,
the static batch, the dtypes, a metric and its value. `read_measurements` checks every
cell at the edge and raises one ``ValueError`` naming the file, the line and the column:

    data.csv:7: column 'weight_dtype': 'int3' is not a known format: did you mean int4, int8?

Blank ``tp`` / ``pp`` / ``ep`` / ``kv_dtype`` cells mean "not stated"; they default to
``tp = n_chips / pp``, ``pp = 1``, ``ep = 1`` and a 16-bit KV cache, and the row records that
it used a default.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import re
from pathlib import Path

from . import dtypes

__all__ = ["METRICS", "Measurement", "MeasurementSet", "read_measurements"]

#: metric name -> unit (the ``value`` column is in this unit)
METRICS: dict[str, str] = {
    "tpot_ms": "ms",
    "e2e_latency_s": "s",
    "output_tok_s": "tok/s",
    "energy_j_per_token": "J/token",
}

REQUIRED_COLUMNS = (
    "id",
    "model",
    "hardware",
    "n_chips",
    "tp",
    "pp",
    "ep",
    "batch",
    "input_len",
    "output_len",
    "weight_dtype",
    "kv_dtype",
    "metric",
    "value",
)
OPTIONAL_COLUMNS = ("batching", "software", "source", "notes")

#: serving modes of the ``batching`` column (blank = ``static``, the first schema's meaning)
BATCHING = ("static", "continuous", "disaggregated")


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One measured row (numbers already checked; slugs not yet resolved).

    Attributes:
      id: the row's ``id`` cell (text, kept as written).
      line: 1-based line of the row in its file (for messages).
      model, hardware: preset slugs.
      n_chips, tp, pp, ep: accelerators and parallel degrees (``tp`` and ``pp`` filled from
        the defaults above when blank).
      batch, input_len, output_len: static batch (sequences, prompt and output tokens).
      weight_dtype, kv_dtype: format names (``kv_dtype`` ``"bf16"`` when blank).
      metric: one of `METRICS`; value: the measurement in the metric's unit.
      software: serving stack text ("" when absent).
      batching: serving mode, one of `BATCHING` (``static`` when blank or absent).
      defaulted: names of the columns that were blank and took a default.
      checkpoint: the Hugging Face checkpoint the ``notes`` name (``checkpoint org/name``),
        "" if none; mixed-precision checkpoints are known to `hwgrad.dtypes.CHECKPOINTS`.
    """

    id: str
    line: int
    model: str
    hardware: str
    n_chips: int
    tp: int
    pp: int
    ep: int
    batch: int
    input_len: int
    output_len: int
    weight_dtype: str
    kv_dtype: str
    metric: str
    value: float
    software: str = ""
    defaulted: tuple[str, ...] = ()
    batching: str = "static"
    source: str = ""
    checkpoint: str = ""

    @property
    def is_energy(self) -> bool:
        return self.metric == "energy_j_per_token"


@dataclasses.dataclass(frozen=True)
class MeasurementSet:
    """Rows read from one file, plus the rows left out by ``skip_unknown`` and why."""

    path: str
    rows: tuple[Measurement, ...]
    unknown: tuple[tuple[Measurement, str], ...] = ()


class _Cells:
    """Typed access to the cells of one CSV record with file/line/column errors."""

    def __init__(self, path: str, line: int, record: dict[str, str]):
        self.path, self.line, self.record = path, line, record

    def error(self, column: str, message: str) -> ValueError:
        return ValueError(f"{self.path}:{self.line}: column {column!r}: {message}")

    def text(self, column: str, required: bool = True) -> str:
        cell = (self.record.get(column) or "").strip()
        if required and not cell:
            raise self.error(column, "is blank: give a value")
        return cell

    def number(self, column: str) -> float:
        cell = self.text(column)
        try:
            x = float(cell)
        except ValueError:
            raise self.error(column, f"{cell!r} is not a number") from None
        if not math.isfinite(x):
            raise self.error(column, f"{cell!r} is not a finite number")
        return x

    def whole(self, column: str, minimum: int = 1, default: int | None = None) -> int | None:
        if default is not None and not self.text(column, required=False):
            return None
        x = self.number(column)
        if x != round(x):
            raise self.error(column, f"{x:g} is not a whole number")
        if x < minimum:
            raise self.error(column, f"{x:g} must be >= {minimum}")
        return int(x)


def _parse_row(cells: _Cells) -> Measurement:
    defaulted = []
    n_chips = cells.whole("n_chips")
    pp = cells.whole("pp", default=1)
    if pp is None:
        pp = 1
        defaulted.append("pp")
    tp = cells.whole("tp", default=1)
    if tp is None:
        if n_chips % pp:
            raise cells.error("pp", f"{pp} does not divide n_chips = {n_chips}; give tp explicitly")
        tp = n_chips // pp
        defaulted.append("tp")
    ep = cells.whole("ep", default=1)
    if ep is None:
        ep = 1  # no expert parallelism unless stated (only matters for MoE models)
    if tp % ep:
        raise cells.error("ep", f"{ep} does not divide tp = {tp}")
    chips_needed = tp * pp
    if n_chips % chips_needed and chips_needed % n_chips:
        raise cells.error(
            "n_chips",
            f"{n_chips} is neither a multiple nor a divisor of tp x pp = {tp} x {pp} = {chips_needed}",
        )
    weight_dtype = cells.text("weight_dtype").lower()
    try:
        dtypes.lookup(weight_dtype, "weight_dtype")
    except ValueError as exc:
        raise cells.error("weight_dtype", str(exc).split(" = ", 1)[-1]) from None
    kv_dtype = cells.text("kv_dtype", required=False).lower()
    if not kv_dtype:
        kv_dtype = "bf16"
        defaulted.append("kv_dtype")
    try:
        dtypes.lookup(kv_dtype, "kv_dtype")
    except ValueError as exc:
        raise cells.error("kv_dtype", str(exc).split(" = ", 1)[-1]) from None
    metric = cells.text("metric")
    if metric not in METRICS:
        raise cells.error("metric", f"{metric!r} is not a known metric: use one of {', '.join(METRICS)}")
    value = cells.number("value")
    if value <= 0:
        raise cells.error("value", f"{value:g} must be > 0 (a measurement in {METRICS[metric]})")
    batching = cells.text("batching", required=False).lower() or "static"
    if batching not in BATCHING:
        raise cells.error("batching", f"{batching!r} is not a serving mode: use one of {', '.join(BATCHING)}")
    return Measurement(
        id=cells.text("id"),
        line=cells.line,
        model=cells.text("model"),
        hardware=cells.text("hardware"),
        n_chips=n_chips,
        tp=tp,
        pp=pp,
        ep=ep,
        batch=cells.whole("batch"),
        input_len=cells.whole("input_len", minimum=0),
        output_len=cells.whole("output_len"),
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
        metric=metric,
        value=value,
        software=cells.text("software", required=False),
        defaulted=tuple(defaulted),
        batching=batching,
        source=cells.text("source", required=False),
        checkpoint=_checkpoint(cells.text("notes", required=False)),
    )


_CHECKPOINT = re.compile(r"\bcheckpoint\s+([\w.-]+/[\w.-]+)", re.IGNORECASE)


def _checkpoint(notes: str) -> str:
    """The first ``checkpoint org/name`` the notes mention ("" if none)."""
    found = _CHECKPOINT.search(notes)
    return found.group(1) if found else ""


def read_measurements(path: str | Path, skip_unknown: bool = False) -> MeasurementSet:
    """Read and check a CSV file in the calibration schema.

    Args:
      path: the CSV file (UTF-8, header row, RFC-4180 quoting).
      skip_unknown: leave out (and report) rows whose model or hardware is not a preset,
        instead of raising.

    Returns:
      A `MeasurementSet` with the rows in file order.

    Raises:
      ValueError: naming the file, line and column of the first bad cell (malformed CSV,
        missing columns, unknown dtype or metric, non-numeric or non-positive values,
        unknown model or hardware unless ``skip_unknown``).
    """
    from . import presets

    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ValueError(f"{name}: cannot read ({exc.strerror or exc})") from None
    reader = csv.reader(text.splitlines(keepends=True), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise ValueError(
            f"{name}:1: empty file: expected a header row with {', '.join(REQUIRED_COLUMNS)}"
        ) from None
    except csv.Error as exc:
        raise ValueError(f"{name}:1: malformed CSV header ({exc})") from None
    header = [h.strip() for h in header]
    if not any(header):
        raise ValueError(f"{name}:1: empty header row: expected {', '.join(REQUIRED_COLUMNS)}")
    dupes = sorted({h for h in header if header.count(h) > 1 and h})
    if dupes:
        raise ValueError(f"{name}:1: duplicate column(s) {', '.join(dupes)} in the header")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ValueError(
            f"{name}:1: missing column(s) {', '.join(repr(c) for c in missing)}; "
            f"the calibration schema needs {', '.join(REQUIRED_COLUMNS)}"
        )

    known_models = set(presets.names("models"))
    known_hardware = set(presets.names("hardware"))
    rows: list[Measurement] = []
    unknown: list[tuple[Measurement, str]] = []
    seen_ids: dict[str, int] = {}
    last_line = reader.line_num
    while True:
        start = last_line + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise ValueError(f"{name}:{start}: malformed CSV ({exc})") from None
        last_line = reader.line_num
        if not record or all(not cell.strip() for cell in record):
            continue  # blank line
        if len(record) != len(header):
            raise ValueError(
                f"{name}:{start}: malformed CSV: {len(record)} fields but the header has {len(header)} "
                "(check quoting of cells that contain commas)"
            )
        cells = _Cells(name, start, dict(zip(header, record, strict=True)))
        row = _parse_row(cells)
        if row.id in seen_ids:
            raise cells.error("id", f"{row.id!r} repeats the id of line {seen_ids[row.id]}")
        seen_ids[row.id] = start
        problems = []
        if row.model not in known_models:
            problems.append(("model", f"unknown model {row.model!r}"))
        if row.hardware not in known_hardware:
            problems.append(("hardware", f"unknown hardware {row.hardware!r}"))
        if problems:
            if not skip_unknown:
                column, message = problems[0]
                kind = "models" if column == "model" else "hardware"
                raise cells.error(
                    column,
                    f"{message}: not a preset (see `hwgrad presets {kind}`); "
                    "pass --skip-unknown to leave it out",
                )
            unknown.append((row, "; ".join(m for _, m in problems)))
            continue
        rows.append(row)
    return MeasurementSet(path=name, rows=tuple(rows), unknown=tuple(unknown))
