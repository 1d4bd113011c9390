"""Speculative decoding quality: acceptance rates from published measurements.

A speculative decoder drafts ``k`` tokens cheaply and verifies them in one forward pass of
the target model. With per-token acceptance ``alpha`` (independent across positions) a
chain draft commits, per verification step, on average (Leviathan et al. 2023, eq. 1):

    E[tokens per step] = (1 - alpha^(k + 1)) / (1 - alpha)        (k + 1 at alpha = 1)

bonus token included. `expected_tokens_per_step` is this expression, differentiable in
``alpha`` and ``k``; `acceptance_from_tokens` inverts it. `lookup` returns the
measured defaults of one (target model, draft method) pairing from
``hwgrad/presets/data/speculative_decoding.csv`` (EAGLE 1-3, Medusa, Hydra, draft models,
prompt lookup, Lookahead, REST, n-gram, multi-token prediction), naming the sources.

How the table's two numbers relate: EAGLE reports ``tau`` (mean accepted tokens) for its
tree draft and ``0-alpha`` for a chain draft with exact features. On the six MT-bench
temperature-0 models the chain formula with that ``alpha`` and ``k = 5`` lies between the
measured chain-draft ``tau`` (EAGLE's ablation) and the tree ``tau``; it under-predicts the
tree by 2-29 % (median 10 %) over the 31 rows that carry both (tested in
``tests/test_speculative.py``). Use ``mean_accepted_tokens`` of `lookup` directly when the
serving model needs tokens per step; use ``acceptance_rate`` with the formula to vary ``k``.

References:
  Leviathan, Kalman & Matias, "Fast Inference from Transformers via Speculative Decoding",
  ICML 2023. Chen et al., "Accelerating LLM Decoding with Speculative Sampling", 2023.
  Li et al., "EAGLE" (ICML 2024), "EAGLE-2" (EMNLP 2024), "EAGLE-3" (2025). Cai et al.,
  "Medusa", ICML 2024. Data sources: the ``source`` column of ``speculative_decoding.csv``.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import functools
import math
from importlib import resources

import jax.numpy as jnp
import numpy as np

__all__ = [
    "METHODS",
    "CHAIN_METHODS",
    "AcceptanceDefault",
    "expected_tokens_per_step",
    "acceptance_from_tokens",
    "method_of",
    "rows",
    "pairings",
    "lookup",
]

# canonical draft method -> how the table spells it (prefix match on draft_method)
METHODS = {
    "eagle-chain": ("EAGLE (chain draft",),
    "eagle-2": ("EAGLE-2",),
    "eagle-3": ("EAGLE-3",),
    "eagle": ("EAGLE",),
    "medusa-2": ("Medusa-2",),
    "medusa": ("Medusa",),
    "hydra": ("Hydra",),
    "draft-model": ("standard speculative sampling", "SpS", "draft model"),
    "prompt-lookup": ("prompt lookup", "PLD", "n-gram prompt lookup"),
    "lookahead": ("Lookahead",),
    "ngram": ("N-gram",),
    "rest": ("REST",),
    "mtp": ("MTP",),
}


# methods whose drafts are chains, so a stated (tau, k) can be inverted for alpha; tree drafts
# (EAGLE, EAGLE-2/3, Medusa, Hydra, Lookahead, REST) state k as the tree size and are not inverted
CHAIN_METHODS = ("eagle-chain", "draft-model", "prompt-lookup", "ngram", "mtp")


def _safe_log(x):
    ok = x > 0
    return jnp.where(ok, jnp.log(jnp.where(ok, x, 1.0)), -1e3)


def expected_tokens_per_step(alpha, k):
    """Mean tokens committed per verification step of a ``k``-token chain draft.

    ``(1 - alpha^(k+1)) / (1 - alpha)`` (bonus token included): 1 at ``alpha = 0``, ``k + 1``
    at ``alpha = 1``. Smooth and NaN-free in both arguments (a second-order expansion is
    used within 1e-4 of ``alpha = 1``), so ``k`` can be a relaxed design variable.

    Args:
      alpha: per-token acceptance probability in [0, 1].
      k: draft tokens per step (>= 0; may be fractional when relaxed).
    """
    a = jnp.asarray(alpha, dtype=float)
    a = jnp.where(a > 1.0, 1.0, jnp.where(a < 0.0, 0.0, a))  # (clip would halve the edge gradient)
    k = jnp.asarray(k, dtype=float)
    near = a > 1.0 - 1e-4
    a_far = jnp.where(near, 0.5, a)
    far = -jnp.expm1((k + 1.0) * _safe_log(a_far)) / (1.0 - a_far)
    e = 1.0 - a  # sum_{i<=k} a^i = (k+1) - e k(k+1)/2 + e^2 (k+1)k(k-1)/6 + O(e^3)
    close = (k + 1.0) - e * k * (k + 1.0) / 2.0 + e**2 * (k + 1.0) * k * (k - 1.0) / 6.0
    return jnp.where(near, close, far)


def acceptance_from_tokens(mean_tokens: float, k: float) -> float:
    """The ``alpha`` at which `expected_tokens_per_step` equals ``mean_tokens``
    (bisection; concrete numbers). Requires ``1 <= mean_tokens <= k + 1``."""
    if not 1.0 <= mean_tokens <= k + 1.0:
        raise ValueError(
            f"speculative: mean_tokens = {mean_tokens:g} with k = {k:g}: a chain draft commits between "
            f"1 and k + 1 = {k + 1:g} tokens per step; pass the tree size as k for tree drafts"
        )
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if float(expected_tokens_per_step(mid, k)) < mean_tokens:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def method_of(draft_method: str) -> str:
    """Canonical method key of a ``draft_method`` cell (see `METHODS`)."""
    for key, prefixes in METHODS.items():
        if draft_method.startswith(prefixes):
            return key
    raise ValueError(f"speculative: draft_method {draft_method!r} has no canonical key")


def _num(x: str) -> float:
    return float(x) if x not in ("", None) else math.nan


@functools.cache
def rows() -> tuple[dict, ...]:
    """The table's rows with numeric fields parsed (``nan`` = blank) and a ``method`` key."""
    path = resources.files("hwgrad.presets") / "data" / "speculative_decoding.csv"
    with path.open(newline="", encoding="utf-8") as fh:
        raw = list(csv.DictReader(fh))
    out = []
    for r in raw:
        d = dict(r)
        d["method"] = method_of(r["draft_method"])
        for f in (
            "draft_tokens_k",
            "temperature",
            "mean_accepted_tokens_per_step",
            "acceptance_rate",
            "speedup",
        ):
            try:
                d[f] = _num(r[f])
            except ValueError:
                d[f] = math.nan  # a range or note in the cell: not a single number
        out.append(d)
    return tuple(out)


def pairings() -> list[tuple[str, str]]:
    """(target model, method) pairs with at least one acceptance measurement."""
    have = {
        (r["target_model"], r["method"])
        for r in rows()
        if not (math.isnan(r["mean_accepted_tokens_per_step"]) and math.isnan(r["acceptance_rate"]))
    }
    return sorted(have)


@dataclasses.dataclass(frozen=True)
class AcceptanceDefault:
    """Measured acceptance of one (target, method) pairing (medians over matching rows).

    Attributes:
      target_model / method: the pairing.
      mean_accepted_tokens: tokens committed per verification step, bonus included
        (``nan`` if no row gives it).
      acceptance_rate: per-draft-token acceptance ``alpha``; when no row states it and the
        method drafts chains (`CHAIN_METHODS`), derived from ``mean_accepted_tokens`` and
        ``draft_tokens_k`` by inverting the chain formula (``alpha_derived`` is then True);
        otherwise ``nan``.
      draft_tokens_k: median draft length / tree size of the rows used.
      temperature: the sampling temperature selected (``nan``: any / not stated).
      n_rows: rows used; datasets / sources: where they come from.
    """

    target_model: str
    method: str
    mean_accepted_tokens: float
    acceptance_rate: float
    draft_tokens_k: float
    temperature: float
    n_rows: int
    alpha_derived: bool
    datasets: tuple[str, ...]
    sources: tuple[str, ...]

    def expected_tokens(self, k=None):
        """Chain-formula tokens per step at draft length ``k`` (default: the measured k)."""
        return expected_tokens_per_step(self.acceptance_rate, self.draft_tokens_k if k is None else k)


def _suggest(value: str, options: list[str], what: str) -> ValueError:
    close = difflib.get_close_matches(value, options, n=3, cutoff=0.4)
    hint = (
        f"did you mean {', '.join(map(repr, close))}?" if close else f"known: {', '.join(options[:12])} ..."
    )
    return ValueError(f"speculative: {what} {value!r} has no measurement in speculative_decoding.csv: {hint}")


def lookup(target_model: str, method: str, temperature: float | None = 0.0, dataset: str | None = None):
    """Measured acceptance defaults for ``(target_model, method)``.

    Args:
      target_model: slug as in the table (e.g. ``"llama-3.1-8b-instruct"``, ``"vicuna-7b-v1.3"``).
      method: a key of `METHODS` (``"eagle-3"``, ``"medusa"``, ``"draft-model"`` ...).
      temperature: keep rows at this temperature when any exist (``None``: all rows).
      dataset: keep rows of this dataset (e.g. ``"MT-bench"``) when any exist.

    Returns:
      `AcceptanceDefault` (medians over the matching rows, sources named).
    """
    if method not in METHODS:
        raise _suggest(method, list(METHODS), "method")
    sel = [r for r in rows() if r["target_model"] == target_model]
    if not sel:
        raise _suggest(target_model, sorted({r["target_model"] for r in rows()}), "target_model")
    sel = [r for r in sel if r["method"] == method]
    if not sel:
        have = sorted({r["method"] for r in rows() if r["target_model"] == target_model})
        raise ValueError(
            f"speculative: no {method!r} rows for {target_model!r}; measured methods: {', '.join(have)}"
        )
    if temperature is not None and any(r["temperature"] == temperature for r in sel):
        sel = [r for r in sel if r["temperature"] == temperature]
        temp = float(temperature)
    else:
        temp = math.nan
    if dataset is not None and any(r["dataset"] == dataset for r in sel):
        sel = [r for r in sel if r["dataset"] == dataset]
    tau = np.array([r["mean_accepted_tokens_per_step"] for r in sel])
    alpha = np.array([r["acceptance_rate"] for r in sel])
    ks = np.array([r["draft_tokens_k"] for r in sel])
    used = [
        r
        for r in sel
        if not (math.isnan(r["mean_accepted_tokens_per_step"]) and math.isnan(r["acceptance_rate"]))
    ]
    if not used:
        raise ValueError(
            f"speculative: the {method!r} rows for {target_model!r} give only speedups, no acceptance; "
            "pick another method or pass alpha yourself"
        )
    med = lambda x: float(np.median(x[~np.isnan(x)])) if np.any(~np.isnan(x)) else math.nan
    t, a, k = med(tau), med(alpha), med(ks)
    derived = False
    chain = method in CHAIN_METHODS
    if chain and math.isnan(a) and not math.isnan(t) and not math.isnan(k) and 1.0 <= t <= k + 1.0:
        a, derived = acceptance_from_tokens(t, k), True
    return AcceptanceDefault(
        target_model=target_model,
        method=method,
        mean_accepted_tokens=t,
        acceptance_rate=a,
        draft_tokens_k=k,
        temperature=temp,
        n_rows=len(used),
        alpha_derived=derived,
        datasets=tuple(sorted({r["dataset"] for r in used})),
        sources=tuple(sorted({r["source"] for r in used})),
    )
