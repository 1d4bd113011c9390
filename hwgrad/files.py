"""Crash-safe files: atomic writes, checksums, and the checks a resumed run makes first.

Every state file hwgrad writes (sweep manifests and outputs, co-design checkpoints) is
written to a temporary file in the same directory, ``fsync``-ed, renamed over the target and
the directory ``fsync``-ed, so a crash (``kill -9``, power loss) leaves either the old or the
new file, never a torn one. State files carry a SHA-256 of their payload; a resumed run
verifies it and refuses, naming the file, when anything was truncated, edited or corrupted.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

__all__ = ["fsync_dir", "atomic_write", "sha256", "sha256_file", "json_with_checksum", "read_checked_json"]


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a directory entry (after a rename) to disk; a no-op where unsupported."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path``: temporary file + fsync + rename + directory fsync."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, length: int | None = None, hasher=None):
    """SHA-256 of the first ``length`` bytes of a file (all of it by default). Returns the
    hasher (``.hexdigest()``), so a writer can keep appending to it."""
    h = hasher or hashlib.sha256()
    remaining = length
    with open(path, "rb") as fh:
        while remaining is None or remaining > 0:
            block = fh.read(1 << 20 if remaining is None else min(1 << 20, remaining))
            if not block:
                break
            h.update(block)
            if remaining is not None:
                remaining -= len(block)
    return h


def _canonical(payload: dict) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def json_with_checksum(payload: dict) -> bytes:
    """``payload`` as JSON with a ``checksum`` field: SHA-256 of its canonical form."""
    body = {k: v for k, v in payload.items() if k != "checksum"}
    return json.dumps({**body, "checksum": sha256(_canonical(body))}).encode()


def read_checked_json(path: str | os.PathLike, what: str, fix: str) -> dict:
    """A JSON object written by `json_with_checksum`; a one-line ``ValueError`` naming
    the file when it is unreadable, not JSON, not an object, or fails its checksum."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
        doc = json.loads(text)
    except OSError as exc:
        raise ValueError(f"{what} {path}: cannot read ({exc.strerror or exc}); {fix}") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError(f"{what} {path} is damaged (not valid JSON); {fix}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{what} {path} is damaged (not a JSON object); {fix}")
    if "checksum" not in doc:
        raise ValueError(f"{what} {path} has no checksum (damaged, or written by an older hwgrad); {fix}")
    body = {k: v for k, v in doc.items() if k != "checksum"}
    try:
        ok = sha256(_canonical(body)) == doc["checksum"]
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{what} {path} fails its checksum (edited or corrupted); {fix}")
    return doc
