"""Constants, reason codes and the wording of the analysis answer.

Reason codes are short stable strings (machine-readable, in ``comparisons[].reason`` and
``power.reason``); the sentences below are what people read in ``recommendation_reason`` and
``warnings``.
"""

from __future__ import annotations

from collections.abc import Sequence

from .sequential import MIN_UNITS_PER_ARM

# Thresholds and defaults.
SRM_THRESHOLD = 0.001  # a sample-ratio mismatch is flagged when the chi-square p-value is below
DEFAULT_POWER = 0.80  # power used by the sample-size read-out
DEFAULT_CONFIDENCE = 0.95
# CUPED is withheld when having a covariate depends on the variant (chi-square p below this).
COVARIATE_AVAILABILITY_THRESHOLD = SRM_THRESHOLD
DECIMAL_PRECISION = 60  # digits of the local Decimal context used for centered sums

# Reason codes of a comparison or of a degenerate statistic.
NO_DATA = "no_data"  # the variant has no results for the metric
NO_CONTROL_DATA = "no_control_data"  # the control has no results for the metric
TOO_FEW_UNITS = "too_few_units"  # fewer than 2 units in a group: no variance estimate
ZERO_VARIANCE = "zero_variance"  # both groups are constant: the standard error is 0
CONTROL_MEAN_ZERO = "control_mean_zero"  # relative lift undefined
# The control mean is not distinguishable from 0 at the confidence level: the relative lift's
# confidence set (Fieller's) is unbounded, so relative_ci is null.
RELATIVE_CI_UNBOUNDED = "relative_ci_unbounded"
NON_FINITE = "non_finite_input"  # NaN or infinite totals
NUMERIC_OVERFLOW = "numeric_overflow"  # a quantity does not fit in a float
INVALID_MDE = "invalid_minimum_detectable_effect"
SEQUENTIAL_TOO_FEW = "sequential_too_few_units"  # an arm is below sequential.MIN_UNITS_PER_ARM

REASON_TEXT: dict[str, str] = {
    NO_DATA: "a variant has no results",
    NO_CONTROL_DATA: "the control has no results",
    TOO_FEW_UNITS: "fewer than 2 units in a variant, so no variance can be estimated",
    ZERO_VARIANCE: "the values are constant within each variant, so there is no variance",
    CONTROL_MEAN_ZERO: "the control mean is 0, so a relative lift is undefined",
    RELATIVE_CI_UNBOUNDED: (
        "the control mean is not distinguishable from 0 at this confidence level, so the "
        "relative lift's interval is unbounded (the absolute difference's interval holds)"
    ),
    NON_FINITE: "the totals contain NaN or infinite values",
    NUMERIC_OVERFLOW: "the values are too large to be represented as floating-point numbers",
    INVALID_MDE: "the minimum detectable effect must be a positive number",
    SEQUENTIAL_TOO_FEW: (
        f"the always-valid test counts only once every variant has {MIN_UNITS_PER_ARM} units, "
        "because before that its variance estimate is not yet reliable"
    ),
}

# Sentences of recommendation_reason. The first one is the product guide's wording.
WINNER_HIGHER = (
    "{label} shows {lift:.1f}% improvement with {count} units. "
    "Mean: {mean_t:.3f} (vs control: {mean_c:.3f})"
)
WINNER_LOWER = (
    "{label} shows {lift:.1f}% reduction (lower {metric} is better) with {count} "
    "units. Mean: {mean_t:.3f} (vs control: {mean_c:.3f})"
)
WINNER_NO_LIFT = (
    "{label} shows an absolute difference of {diff:+.4g} ({better} {metric} is "
    "better; relative lift undefined because the control mean is 0) with {count} units. "
    "Mean: {mean_t:.3f} (vs control: {mean_c:.3f})"
)
NO_VARIANTS = "No variants to analyze."
NO_CONTROL = "No control variant is defined, so there is nothing to compare against."
NO_TREATMENT = "No treatment variant to compare with the control."
NO_CONTROL_RESULTS = "The control has no results for {metric} yet."
NO_RESULTS = "No results for {metric} yet."
NO_TREATMENT_RESULTS = "No treatment has results for {metric} yet."
SRM_DETECTED = (
    "Sample ratio mismatch detected ({p}, threshold {threshold}): the units assigned do not "
    "match the traffic allocation, so the comparison is not trustworthy until the cause is found."
)
NOT_TESTABLE = "No test is possible on {metric}: {detail}."
NOT_SIGNIFICANT = (
    "No significant difference on {metric} yet (best {p}, not below {alpha:g}{adjusted})."
)
ONLY_WORSE = (
    "No variant beats the control on {metric}: {ids} {verb} significantly worse "
    "({p}). Keep the control."
)
TOO_SMALL = (
    "{label} looks better ({p}) but the sample is too small: the smallest "
    "variant has {units} units and at least {required} per variant are required. "
    "Keep the experiment running."
)
GUARDRAIL_REGRESSION = (
    "{label} is better on {metric} but significantly regresses guardrail "
    "metric {guardrails}; no winner is recommended."
)
ANALYSIS_FAILED = "The analysis could not be completed: {error}."

# Warnings.
WARN_SRM = "Sample ratio mismatch: {p} (threshold {threshold})."
WARN_SMALL = "{label} has {units} units for {metric}, fewer than the {required} required."
WARN_UNITS_MISSING = (
    "{label} has no unit-level totals for {metric}; each result is treated as its own unit."
)
WARN_COMPARISON = "{metric}, {label} vs control: {detail}."
WARN_POWER = "Sample-size read-out unavailable: {detail}."
WARN_NO_CONTROL_STATS = "Control has no results for {metric}."
WARN_MULTIPLE_CONTROLS = "Several variants are marked as control; variant {variant_id} is used."
# {when} is "Stopped" in the stop answer and "Read" in an analysis of a running experiment.
WARN_EARLY_DAYS = (
    "{when} early: after {days:.3g} days, before min_duration_days ({min_days:g}); weekly "
    "cycles and novelty effects are not yet averaged out."
)
WARN_EARLY_UNITS = (
    "{when} early: the smallest variant has {units} units, fewer than the planned {required}."
)
WARN_BAD_CONFIDENCE = "confidence_level {value!r} is not in (0, 1); 0.95 is used."


def joined(names: Sequence[str]) -> str:
    """``A``, ``A and B``, ``A, B and C``: names in a sentence."""
    if len(names) < 2:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


def format_p(p: float | None) -> str:
    """A p-value for a sentence: ``p = 0.0123`` or ``p < 0.0001``."""
    if p is None:
        return "p not available"
    if p < 0.0001:
        return "p < 0.0001"
    return f"p = {p:.4f}"


# Ratio metrics and CUPED (ab_testing.stats.unitsums, ab_testing.stats.cuped).
DENOMINATOR_ZERO = "denominator_zero"  # a ratio metric whose denominator sums to 0
NO_COVARIATE = "no_covariate"  # no unit of the metric has the covariate
COVARIATE_CONSTANT = "covariate_constant"  # the covariate does not vary within variants
COVARIATE_AVAILABILITY = "covariate_availability_differs"  # has-covariate depends on the variant
REASON_TEXT.update(
    {
        DENOMINATOR_ZERO: "the denominator of the ratio sums to 0",
        NO_COVARIATE: "no unit with results has the covariate",
        COVARIATE_CONSTANT: "the covariate does not vary within the variants",
        COVARIATE_AVAILABILITY: (
            "the share of units with a covariate differs between the variants beyond chance, "
            "so adjusting for it is not a pre-experiment adjustment"
        ),
    }
)
CUPED_DECIDED = (
    "The lifts, intervals and p-values of {metrics} are CUPED-adjusted; the means are as observed."
)
WARN_COVARIATE_AVAILABILITY = (
    "CUPED on {metric} is withheld: the covariate is available for {shares} ({p}, threshold "
    "{threshold}), which depends on the variant; the decision uses the unadjusted comparison."
)
