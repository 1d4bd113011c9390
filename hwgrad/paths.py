"""Design paths: the one way to name, read and replace any number of a design.

A *design* is any pytree of specs, usually the mapping ``{"system", "model", "workload",
"compression", "efficiency", "economics"}``. Every numeric leaf has a dotted path built from
field names, mapping keys and tuple indices: ``system.chip.tiers.0.bandwidth_bytes_per_s``,
``workload.batch``. Array leaves (per-layer bits) are addressed whole
(``compression.weight_bits``) or by element (``compression.weight_bits.3``). Static fields
(switches such as ``workload.batching``) are not numbers and have no path; naming one gives an
error that says so.

Patterns select several paths at once: a group (``system.chip`` selects every number under it)
or a glob (``system.chip.*_efficiency``, ``*.bandwidth_bytes_per_s``; ``*`` matches within one
dotted component, ``**`` across components).

Sweeps, sensitivities, co-design variables, calibration parameters, config files and the CLI's
``--set PATH=VALUE`` all resolve names here, so a path learnt in one place works in every other.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Index", "expand", "get", "leaf_paths", "numbers", "replace", "replace_many", "suggest"]


def _keystr(key_path) -> str:
    return jax.tree_util.keystr(key_path, simple=True, separator=".")


class Index:
    """The leaves of a pytree with their dotted paths (one flatten, reused).

    Attributes:
      tree: the indexed pytree.
      paths: the dotted path of every leaf, in flatten order.
      leaves: the leaves, in the same order.
    """

    def __init__(self, tree):
        flat, self.treedef = jax.tree_util.tree_flatten_with_path(tree)
        self.tree = tree
        self.paths = [_keystr(p) for p, _ in flat]
        self.leaves = [v for _, v in flat]
        self.position = {p: i for i, p in enumerate(self.paths)}

    def items(self) -> Iterator[tuple[str, int, tuple]]:
        """``(path, leaf index, element index)`` for every number (array elements too)."""
        for i, (path, leaf) in enumerate(zip(self.paths, self.leaves, strict=True)):
            shape = np.shape(leaf)
            if shape == ():
                yield path, i, ()
            else:
                for elem in np.ndindex(*shape):
                    yield path + "".join(f".{e}" for e in elem), i, elem

    def numbers(self) -> list[str]:
        """Every scalar path (array elements expanded)."""
        return [p for p, _, _ in self.items()]

    def value(self, i: int, elem: tuple) -> float:
        return float(np.asarray(self.leaves[i], dtype=float)[elem])

    def resolve(self, path: str, what: str = "path", whole_arrays: bool = False) -> tuple[int, tuple | None]:
        """``(leaf index, element index)`` of ``path``; a ``ValueError`` with suggestions.

        With ``whole_arrays`` an array leaf may be named whole; its element index is then
        ``None``.
        """
        if not isinstance(path, str) or not path:
            raise ValueError(f"{what} {path!r}: expected a dotted path such as workload.batch")
        if path in self.position:
            i = self.position[path]
            shape = np.shape(self.leaves[i])
            if shape != ():
                if whole_arrays:
                    return i, None
                example = path + "".join(".0" for _ in shape)
                raise ValueError(
                    f"{what} {path!r} is an array of shape {shape}: address one element, e.g. {example}"
                )
            return i, ()
        parts = path.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            head = ".".join(parts[:cut])
            if head in self.position:
                i = self.position[head]
                shape = np.shape(self.leaves[i])
                rest = parts[cut:]
                if len(rest) == len(shape) and all(
                    r.isdigit() and int(r) < n for r, n in zip(rest, shape, strict=True)
                ):
                    return i, tuple(int(r) for r in rest)
                raise ValueError(
                    f"{what} {path!r}: {head} has shape {shape}; use {head}" + "".join(".0" for _ in shape)
                )
        raise ValueError(f"{what} {path!r}: {self.explain(path)}")

    def explain(self, path: str) -> str:
        """Why ``path`` names no number, and the closest paths that do."""
        obj: Any = self.tree
        walked = []
        for part in path.split("."):
            where = ".".join(walked) or "the design"
            if isinstance(obj, Mapping):
                if part not in obj:
                    break
                obj = obj[part]
            elif dataclasses.is_dataclass(obj):
                fields = {f.name: f for f in dataclasses.fields(obj)}
                if part not in fields:
                    break
                if fields[part].metadata.get("static"):
                    return (
                        f"{where}.{part} = {getattr(obj, part)!r} is a static switch, not a number: "
                        "run one evaluation per value"
                    )
                obj = getattr(obj, part)
            elif isinstance(obj, tuple | list):
                if not part.isdigit() or int(part) >= len(obj):
                    return f"{where} has {len(obj)} entries: use an index 0..{len(obj) - 1}"
                obj = obj[int(part)]
            else:
                break
            walked.append(part)
            if obj is None:
                return f"{'.'.join(walked)} is None in this design: set it first (e.g. a Placement)"
        else:
            if walked:
                inner = [p for p in self.numbers() if p.startswith(path + ".")]
                if inner:
                    return f"not a number but a group; pick one of {', '.join(inner[:4])}" + (
                        ", ..." if len(inner) > 4 else ""
                    )
        return suggest(path, self.numbers())

    def get(self, path: str, what: str = "path"):
        """The leaf (or array element) at ``path``; whole arrays allowed."""
        i, elem = self.resolve(path, what, whole_arrays=True)
        return self.leaves[i][elem] if elem else self.leaves[i]  # elem None / (): the leaf

    def replace(self, updates: Mapping[str, Any], what: str = "path"):
        """A copy of the tree with each path's number (or whole array) replaced; traceable."""
        leaves = list(self.leaves)
        for path, value in updates.items():
            i, elem = self.resolve(path, what, whole_arrays=True)
            if elem is None or elem == ():
                leaves[i] = value
            else:
                leaves[i] = jnp.asarray(leaves[i], dtype=jnp.result_type(float)).at[elem].set(value)
        return jax.tree_util.tree_unflatten(self.treedef, leaves)


def suggest(path: str, candidates: Sequence[str]) -> str:
    """``unknown; did you mean ...?`` with the closest candidates (same last field first)."""
    last = path.rsplit(".", 1)[-1]
    same_field = [c for c in candidates if c.rsplit(".", 1)[-1] == last or c.endswith("." + path)]
    close = difflib.get_close_matches(path, candidates, n=3, cutoff=0.6)
    close_last = []
    if not same_field and not close:
        fields = {c.rsplit(".", 1)[-1]: c for c in candidates}
        close_last = [fields[f] for f in difflib.get_close_matches(last, list(fields), n=3, cutoff=0.6)]
    picks = list(dict.fromkeys(same_field[:3] + close + close_last))[:3]
    if picks:
        return f"unknown; did you mean {', '.join(picks)}?"
    roots = sorted({c.split(".", 1)[0] for c in candidates})
    return f"unknown; paths start with {', '.join(roots)} (list them with hwgrad.paths.numbers(design))"


def numbers(tree) -> dict[str, float]:
    """Every scalar number of ``tree`` (array elements too) by dotted path, with its value."""
    index = Index(tree)
    return {p: index.value(i, e) for p, i, e in index.items()}


def leaf_paths(tree) -> list[str]:
    """Every leaf of ``tree`` as a dotted path, arrays named whole (``compression.weight_bits``)."""
    return list(Index(tree).paths)


def get(tree, path: str):
    """The number (or whole array) at ``path``; ``ValueError`` with suggestions if there is none."""
    return Index(tree).get(path)


def replace(tree, path: str, value):
    """A copy of ``tree`` with the number, whole array or whole sub-spec at ``path`` replaced.

    Traceable: ``value`` may be a tracer. A group path (``system.chip``) takes a spec of the
    same kind (a `Chip`).
    """
    index = Index(tree)
    if path in index.position or any(path.startswith(p + ".") for p in index.position):
        return index.replace({path: value})
    if any(p.startswith(path + ".") for p in index.position):
        return _put(tree, path.split("."), value)
    index.resolve(path)  # raises with the reason
    raise AssertionError(path)


def _put(node, parts: list[str], value):
    if not parts:
        return value
    head, rest = parts[0], parts[1:]
    if isinstance(node, Mapping):
        return {**node, head: _put(node[head], rest, value)}
    if isinstance(node, tuple | list):
        items = list(node)
        items[int(head)] = _put(items[int(head)], rest, value)
        return type(node)(items)
    return dataclasses.replace(node, **{head: _put(getattr(node, head), rest, value)})


def replace_many(tree, updates: Mapping[str, Any]):
    """A copy of ``tree`` with several paths replaced at once (one flatten)."""
    return Index(tree).replace(updates)


def _glob_regex(pattern: str) -> re.Pattern:
    parts = []
    for token in re.split(r"(\*\*|\*|\?)", pattern):
        if token == "**":
            parts.append(r".*")
        elif token == "*":
            parts.append(r"[^.]*")
        elif token == "?":
            parts.append(r"[^.]")
        else:
            parts.append(re.escape(token))
    return re.compile("".join(parts) + r"\Z")


def expand(tree, pattern: str, whole_arrays: bool = False) -> list[str]:
    """The paths that ``pattern`` selects: itself, every number under a group, or a glob's matches.

    ``whole_arrays`` lists array leaves whole rather than element by element.
    ``ValueError`` (with suggestions) when nothing matches.
    """
    index = Index(tree)
    names = index.paths if whole_arrays else index.numbers()
    if any(c in pattern for c in "*?["):
        if "[" in pattern:
            hits = fnmatch.filter(names, pattern)
        else:
            regex = _glob_regex(pattern)
            hits = [n for n in names if regex.match(n)]
        if not hits:
            raise ValueError(f"pattern {pattern!r} matches no number: {suggest(pattern.strip('*.'), names)}")
        return hits
    if pattern in names:
        return [pattern]
    group = [n for n in names if n.startswith(pattern + ".")]
    if group:
        return group
    index.resolve(pattern, "path", whole_arrays=whole_arrays)  # raises with the reason
    return [pattern]
