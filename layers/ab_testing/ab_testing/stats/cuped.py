"""CUPED: regression adjustment with a pre-experiment covariate, from unit-level running totals.

Deng, Xu, Kohavi and Walker (2013), "Improving the Sensitivity of Online Controlled Experiments
by Utilizing Pre-Experiment Data" (WSDM), sec. 3: Y_cv = Y - theta (X - E X) with
theta = Cov(Y, X) / Var(X) keeps the estimate unbiased and divides its variance by 1 - rho^2.

Here the outcome of unit i is the linearised value of the metric's ratio estimator r = sum A /
sum B (ab_testing.stats.unitsums): L_i = (A_i - r B_i) / B_bar, so ordinary metrics (mean per
result) and ratio metrics are adjusted alike (Deng, Knoblich and Lu 2018, sec. 4). Units
without a covariate keep their place: X_i is taken as 0 and an indicator h_i (1 when the unit
has one) joins the regression, so the estimand is unchanged and the adjustment uses what is
known. theta is pooled within variants, theta = (sum_g C_zz,g)^-1 sum_g C_zL,g, which makes the
adjusted difference equal to the treatment coefficient of an OLS of L on the variant and the
centred covariates (docs/statistics.md, "CUPED").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, localcontext

from .descriptive import Summary
from .messages import COVARIATE_CONSTANT, DECIMAL_PRECISION, NO_COVARIATE, TOO_FEW_UNITS
from .unitsums import UnitSums, residual_sum_sq

Matrix = tuple[tuple[float, float], tuple[float, float]]


@dataclass(frozen=True)
class CupedFit:
    """The pooled theta (for X and the has-covariate indicator) and the adjusted summaries."""

    theta: tuple[float, float] | None
    adjusted: dict[int, Summary]
    units: int
    units_with_covariate: int
    reason: str | None = None


@dataclass(frozen=True)
class _Group:
    units: int
    mean: float
    sll: float  # sum of squared centred L
    szl: tuple[float, float]  # sum of (Z - Z_bar) L
    czz: Matrix  # sum of (Z - Z_bar)(Z - Z_bar)^T
    z_sum: tuple[float, float]  # sum X, sum h
    results: int


def _group(s: UnitSums) -> _Group:
    with localcontext() as ctx:
        ctx.prec = DECIMAL_PRECISION
        k = Decimal(s.units)
        r = s.a / s.b
        b_bar = s.b / k
        sll = residual_sum_sq(s, r) / (b_bar * b_bar)
        szl = ((s.xa - r * s.xb) / b_bar, (s.ha - r * s.hb) / b_bar)
        cxx = s.xx - s.x * s.x / k
        cxh = s.x - s.x * s.h / k
        chh = s.h - s.h * s.h / k
    return _Group(
        units=s.units,
        mean=float(r),
        sll=float(sll),
        szl=(float(szl[0]), float(szl[1])),
        czz=((float(cxx), float(cxh)), (float(cxh), float(chh))),
        z_sum=(float(s.x), float(s.h)),
        results=s.results,
    )


def _solve(czz: Matrix, czl: tuple[float, float]) -> tuple[float, float] | None:
    """theta from the pooled normal equations; the indicator drops out when every unit (or no
    unit) of a variant has the covariate, or when it is collinear with X."""
    (cxx, cxh), (_, chh) = czz
    if cxx <= 0:
        return None
    det = cxx * chh - cxh * cxh
    if chh > 0 and det > 1e-12 * cxx * chh:
        return (
            (chh * czl[0] - cxh * czl[1]) / det,
            (cxx * czl[1] - cxh * czl[0]) / det,
        )
    return (czl[0] / cxx, 0.0)


def fit(groups: Mapping[int, UnitSums]) -> CupedFit:
    """Adjusted summaries of every variant of one metric, or the reason there are none."""
    units = sum(s.units for s in groups.values())
    with_covariate = int(sum(s.h for s in groups.values()))
    if with_covariate == 0:
        return CupedFit(None, {}, units, 0, NO_COVARIATE)
    if any(s.units < 2 or s.b == 0 for s in groups.values()):
        return CupedFit(None, {}, units, with_covariate, TOO_FEW_UNITS)
    parts = {vid: _group(s) for vid, s in groups.items()}
    czz = tuple(tuple(sum(g.czz[i][j] for g in parts.values()) for j in range(2)) for i in range(2))
    czl = tuple(sum(g.szl[i] for g in parts.values()) for i in range(2))
    theta = _solve(czz, czl)  # type: ignore[arg-type]
    if theta is None:
        return CupedFit(None, {}, units, with_covariate, COVARIATE_CONSTANT)
    z_bar = tuple(sum(g.z_sum[i] for g in parts.values()) / units for i in range(2))
    adjusted = {vid: _adjusted(g, theta, z_bar) for vid, g in parts.items()}  # type: ignore[arg-type]
    return CupedFit(theta, adjusted, units, with_covariate)


def _adjusted(g: _Group, theta: tuple[float, float], z_bar: tuple[float, float]) -> Summary:
    """r - theta . (Z_bar_g - Z_bar), with the variance of the adjusted linearised values."""
    k = g.units
    shift = sum(theta[i] * (g.z_sum[i] / k - z_bar[i]) for i in range(2))
    quad = sum(theta[i] * g.czz[i][j] * theta[j] for i in range(2) for j in range(2))
    ss = max(g.sll - 2 * (theta[0] * g.szl[0] + theta[1] * g.szl[1]) + quad, 0.0)
    unit_var = ss / (k - 1)
    return Summary(
        results=g.results,
        units=k,
        mean=g.mean - shift,
        var_mean=unit_var / k,
        unit_variance=unit_var,
    )
