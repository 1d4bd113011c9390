"""Which fitted numbers the data identify: posterior spread against prior spread.

A Laplace approximation at the fitted optimum. The fit minimises (`hwgrad.calibrate.fit`)

    L = sum_i w_i rho(r_i) / W  +  d^2 / N * sum_k z_k^2 / 2,     r_i = log(pred_i / measured_i)

(Cauchy ``rho`` of scale ``d``, ``N`` rows with weight, ``z`` the prior z-scores), i.e. a
posterior whose negative log is ``N / d^2 L``. Its curvature in the unconstrained
coordinates ``u`` of the fitted numbers is approximated by Gauss-Newton with the Cauchy
loss's reweighting (positive definite, no second derivatives of the model):

    H = J^T diag(N w_i / (W d^2 (1 + (r_i / d)^2))) J + diag(1 / prior_sd^2),   J = dr / du

and ``sqrt(diag(H^-1))`` is the posterior sd of each number. A ratio posterior sd / prior
sd near 0 means the rows pin the number down; near 1, the prior does (the data say nothing
about it). Each stage is taken on its own rows, as it was fitted: the latency parameters on
the latency/throughput rows, ``active_power_fraction`` on the energy rows.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from .fit import Fitter


@dataclasses.dataclass(frozen=True)
class Identified:
    """One fitted number.

    Attributes:
      key: the parameter (``chip.bandwidth_efficiency``, ...).
      member: ``"shared"`` or the vendor line / stack family of an offset.
      value: the resolved value there (physical units).
      sd: its posterior sd (physical units, delta method).
      ratio: posterior sd / prior sd of the value (shared + offset) in the unconstrained
        coordinate (0: set by the data, 1: set by the prior; NaN without a prior).
    """

    key: str
    member: str
    value: float
    sd: float
    ratio: float

    @property
    def verdict(self) -> str:
        if not math.isfinite(self.ratio):
            return "no prior"
        return "identified" if self.ratio < 0.3 else "partly" if self.ratio < 0.7 else "prior"


def identification(fitter: Fitter, params, weights: np.ndarray) -> list[Identified]:
    """Posterior sd against prior sd of every number the fit chose (`Fitter.optimise`'s
    ``params`` at row weights ``weights``)."""
    theta, deltas = (np.asarray(params[0]), {k: np.asarray(v) for k, v in params[1].items()})
    numbers = fitter.numbers(weights)
    out: list[Identified] = []
    for stage, rows in (("latency", ~fitter.is_energy), ("energy", fitter.is_energy)):
        w = np.where(rows, weights, 0.0)
        mine = [n for n in numbers if fitter.params[n[2]].stage == stage]
        if w.sum() > 0 and mine:
            out += _stage(fitter, theta, deltas, w, mine)
    return out


def _prior_sd(fitter: Fitter, level: str, j: int) -> float:
    """Prior sd of a number in unconstrained units (``inf``: a shared value without prior)."""
    p = fitter.params[j]
    if level != "shared":
        return p.offset_sd
    return p.prior_sd if fitter.settings.priors else math.inf


def _stage(fitter: Fitter, theta, deltas, w, numbers) -> list[Identified]:
    """The stage's numbers (`Fitter.numbers`) on its rows (weights ``w``)."""
    prior_sd = np.asarray([_prior_sd(fitter, level, j) for level, _, j in numbers], np.float64)
    lv = np.asarray([n[0] for n in numbers])
    mi = np.asarray([n[1] for n in numbers])
    pj = np.asarray([n[2] for n in numbers])

    def residuals(x):
        t = jnp.asarray(theta).at[pj[lv == "shared"]].add(x[lv == "shared"])
        d = {}
        for level, arr in deltas.items():
            sel = lv == level
            d[level] = jnp.asarray(arr).at[mi[sel], pj[sel]].add(x[sel])
        pred = fitter.engine.row_predictions(*fitter.specs(t, d), fitter.engine.specs)
        return jnp.log(pred) - fitter.log_measured

    x0 = jnp.zeros(len(numbers), jnp.float32)
    r, jac = jax.jit(lambda x: (residuals(x), jax.jacfwd(residuals)(x)))(x0)
    r, jac = np.asarray(r, np.float64), np.asarray(jac, np.float64)
    keep = w > 0
    scale = fitter.settings.loss_scale
    omega = np.where(keep, keep.sum() * w / (w.sum() * scale**2 * (1.0 + (r / scale) ** 2)), 0.0)
    jac = np.where(keep[:, None] & np.isfinite(jac), jac, 0.0)
    hess = jac.T @ (omega[:, None] * jac) + np.diag(1.0 / prior_sd**2)
    cov = np.linalg.pinv(hess)
    prior_var = prior_sd**2

    out = []
    for k, (level, i, j) in enumerate(numbers):
        p = fitter.params[j]
        # a member's value is shared + its offsets: its spread includes theirs
        a = np.zeros(len(numbers))
        a[k] = 1.0
        u = float(theta[j])
        if level != "shared":
            a[[m for m, n in enumerate(numbers) if n[0] == "shared" and n[2] == j]] = 1.0
            for lv_, i_ in fitter.chain(level, i):  # its own offset and its parent's
                a[[m for m, n in enumerate(numbers) if n == (lv_, i_, j)]] = 1.0
                u += float(deltas[lv_][i_, j] * fitter.mask[lv_][i_, j])
        sd_u = math.sqrt(max(float(a @ cov @ a), 0.0))
        prior_u = math.sqrt(float(np.sum(prior_var[a > 0])))
        value, slope = jax.value_and_grad(p.from_u)(jnp.float32(u))  # delta method
        member = "shared" if level == "shared" else fitter.members[level][i]
        ratio = min(sd_u / prior_u, 1.0) if math.isfinite(prior_u) else math.nan
        out.append(Identified(p.key, member, float(value), abs(float(slope)) * sd_u, ratio))
    return out


def format_identification(table: list[Identified]) -> list[str]:
    """Lines for the calibration header: a summary, then one line per number."""
    counts = {v: sum(t.verdict == v for t in table) for v in ("identified", "partly", "prior")}
    lines = [
        f"identified by the data (posterior sd / prior sd < 0.3): {counts['identified']} of {len(table)}; "
        f"partly (< 0.7): {counts['partly']}; set by the prior: {counts['prior']}"
    ]
    for t in table:
        lines.append(
            f"  {t.key} @ {t.member}: {t.value:.4g} +- {t.sd:.2g} (sd ratio {t.ratio:.2f}, {t.verdict})"
        )
    return lines
