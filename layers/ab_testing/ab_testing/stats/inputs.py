"""Inputs of the analyzer: frozen sufficient statistics, free of scipy and numpy.

The store keeps these as running totals (Decimal in DynamoDB); the service turns them into
these objects, so an analysis reads O(variants x metrics) items whatever the number of results.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import Literal

Number = float | int | Decimal
MetricKind = Literal["binary", "continuous", "count", "ratio"]
Direction = Literal["higher", "lower"]
AnalysisMethod = Literal["fixed_horizon", "sequential"]


def alpha_of(confidence_level: float) -> float:
    """The significance level alpha = 1 - confidence, rounded to 12 decimals: in binary floating
    point 1 - 0.95 is 0.05000000000000004, which would count p = 0.05 as "below" alpha."""
    return round(1.0 - confidence_level, 12)


# DynamoDB numbers carry up to 38 significant digits; the totals are formed at that precision
# (Python's default context has 28, which rounds sum(y^2) of values above ~1e13).
STORE_PRECISION = 38


@dataclass(frozen=True)
class MetricTotals:
    """Running totals of one metric in one variant.

    Result level: ``results`` (n), ``total`` (sum y), ``total_sq`` (sum y^2), ``min``, ``max``.
    Unit level, for the cluster-robust (delta-method) variance of the mean per result, where
    unit i has its own sum S_i and count m_i: ``units`` (number of units with >= 1 result),
    ``unit_sum_sq`` (sum S_i^2), ``unit_count_sq`` (sum m_i^2), ``unit_sum_count`` (sum S_i m_i).
    sum S_i is ``total`` and sum m_i is ``results``.
    """

    results: int = 0
    total: Number = 0
    total_sq: Number = 0
    min: Number | None = None
    max: Number | None = None
    units: int = 0
    unit_sum_sq: Number = 0
    unit_count_sq: Number = 0
    unit_sum_count: Number = 0
    # Covariate sums (CUPED) over the units that have a covariate X (h = 1 for them):
    # sum h, sum X, sum X^2, sum X*S, sum X*m, sum h*S, sum h*m.
    cov_units: int = 0
    cov_sum: Number = 0
    cov_sum_sq: Number = 0
    cov_x_sum: Number = 0
    cov_x_count: Number = 0
    cov_h_sum: Number = 0
    cov_h_count: Number = 0

    @classmethod
    def from_units(cls, per_unit_values: Iterable[Sequence[Number]]) -> MetricTotals:
        """Batch computation from raw values grouped by unit (tests and reconciliation)."""
        with localcontext() as ctx:
            ctx.prec = STORE_PRECISION
            return cls._from_units(per_unit_values)

    @classmethod
    def _from_units(cls, per_unit_values: Iterable[Sequence[Number]]) -> MetricTotals:
        results = units = 0
        total = total_sq = unit_sum_sq = unit_count_sq = unit_sum_count = Decimal(0)
        lo: Decimal | None = None
        hi: Decimal | None = None
        for values in per_unit_values:
            ys = [Decimal(str(v)) if not isinstance(v, Decimal) else v for v in values]
            if not ys:
                continue
            s, m = sum(ys, Decimal(0)), len(ys)
            units += 1
            results += m
            total += s
            total_sq += sum((y * y for y in ys), Decimal(0))
            unit_sum_sq += s * s
            unit_count_sq += m * m
            unit_sum_count += s * m
            lo = min(ys) if lo is None else min(lo, *ys)
            hi = max(ys) if hi is None else max(hi, *ys)
        return cls(
            results, total, total_sq, lo, hi, units, unit_sum_sq, unit_count_sq, unit_sum_count
        )

    def __add__(self, other: MetricTotals) -> MetricTotals:
        """Sum of two shards of the same totals."""
        with localcontext() as ctx:
            ctx.prec = STORE_PRECISION
            return self._add(other)

    def _add(self, other: MetricTotals) -> MetricTotals:
        lows = [v for v in (self.min, other.min) if v is not None]
        highs = [v for v in (self.max, other.max) if v is not None]
        sums = {
            f: Decimal(str(getattr(self, f))) + Decimal(str(getattr(other, f))) for f in _SUMMED
        }
        return MetricTotals(
            results=self.results + other.results,
            min=min(lows) if lows else None,
            max=max(highs) if highs else None,
            units=self.units + other.units,
            cov_units=self.cov_units + other.cov_units,
            **sums,
        )


_SUMMED = (
    "total",
    "total_sq",
    "unit_sum_sq",
    "unit_count_sq",
    "unit_sum_count",
    "cov_sum",
    "cov_sum_sq",
    "cov_x_sum",
    "cov_x_count",
    "cov_h_sum",
    "cov_h_count",
)


@dataclass(frozen=True)
class RatioTotals:
    """What a ratio metric N/D keeps beyond the totals of N and D, per variant: the units with a
    result of either metric, the cross sum sum N_i D_i, and the covariate sums over those
    units (sum h, sum X, sum X^2)."""

    units: int = 0
    cross: Number = 0
    cov_units: int = 0
    cov_sum: Number = 0
    cov_sum_sq: Number = 0

    def __add__(self, other: RatioTotals) -> RatioTotals:
        with localcontext() as ctx:
            ctx.prec = STORE_PRECISION
            return RatioTotals(
                units=self.units + other.units,
                cross=Decimal(str(self.cross)) + Decimal(str(other.cross)),
                cov_units=self.cov_units + other.cov_units,
                cov_sum=Decimal(str(self.cov_sum)) + Decimal(str(other.cov_sum)),
                cov_sum_sq=Decimal(str(self.cov_sum_sq)) + Decimal(str(other.cov_sum_sq)),
            )


@dataclass(frozen=True)
class RatioSpec:
    """A ratio metric: sum over units of numerator / sum over units of denominator."""

    name: str
    numerator: str
    denominator: str
    direction: Direction = "lower"


@dataclass(frozen=True)
class MetricSpec:
    """What a metric is: its kind, which direction is better, its bounds, and its role."""

    name: str
    kind: MetricKind = "continuous"
    direction: Direction = "higher"
    lower: float | None = None
    upper: float | None = None
    guardrail: bool = False
    decimals: int = 6  # values are kept to this many decimal places (at most 12)


@dataclass(frozen=True)
class VariantInput:
    variant_id: int
    name: str
    is_control: bool
    traffic_allocation: float  # percent, the variants of an experiment sum to 100
    units_assigned: int  # running count of units assigned
    metrics: dict[str, MetricTotals] = field(default_factory=dict)
    # Units assigned under the current allocation (since the last rebalance), for the
    # sample-ratio check; None means all of units_assigned.
    srm_units: int | None = None
    ratios: dict[str, RatioTotals] = field(default_factory=dict)


@dataclass(frozen=True)
class AnalysisInput:
    experiment_id: int
    primary_metric: MetricSpec
    variants: Sequence[VariantInput]
    secondary_metrics: Sequence[MetricSpec] = ()
    confidence_level: float = 0.95
    min_sample_size: int = 100
    minimum_detectable_effect: float = 0.10  # relative, for the power read-out
    analysis_method: AnalysisMethod = "fixed_horizon"
    sequential_tuning_units: int | None = None  # t* of the confidence sequence, if fixed
    ratio_metrics: Sequence[RatioSpec] = ()
    covariate: str | None = None  # CUPED: the name of the pre-experiment covariate, if any
    # The declared trade-off rule: per metric, the largest relative worsening accepted.
    acceptable_regressions: Mapping[str, float] = field(default_factory=dict)
