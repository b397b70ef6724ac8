"""The analyzer: a pure function from sufficient statistics to the JSON-ready analysis answer."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from . import messages as msg
from .comparisons import TreatmentResult, compare_treatments, guardrail_checks
from .cuped import CupedFit
from .decision import Candidate, Decision, DecisionContext, decide
from .decision_rule import SHIP, decide_action
from .inputs import AnalysisInput, MetricSpec, VariantInput, alpha_of
from .power import PowerResult, required_units
from .report import (
    comparison_dict,
    failed_answer,
    power_dict,
    srm_dict,
    stats_dict,
    to_json_safe,
)
from .sequential import optimal_rho
from .srm import SrmResult, srm_check
from .tradeoff import trade_off_lines
from .unit_metrics import availability_shares, cuped_dict, cuped_results, metric_summaries
from .verdict import bad_movements, variant_label, with_movements

__all__ = ["StatisticalAnalyzer", "to_json_safe"]


class StatisticalAnalyzer:
    """Turns an :class:`AnalysisInput` into the analysis answer (see docs/statistics.md).

    ``sequential_t_star`` is the number of units (control + treatment) at which the confidence
    sequence is tightest. Unless given here or by the experiment (``sequential_tuning_units``)
    it is twice the planned units per variant: the power read-out's units at the minimum
    detectable effect (or ``min_sample_size`` when that cannot be computed).
    """

    def __init__(
        self,
        *,
        srm_threshold: float = msg.SRM_THRESHOLD,
        power: float = msg.DEFAULT_POWER,
        sequential_t_star: int | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.srm_threshold = srm_threshold
        self.power = power
        self.sequential_t_star = sequential_t_star
        self.clock = clock or (lambda: datetime.now(UTC))

    def analyze(self, inp: AnalysisInput) -> dict[str, Any]:
        """The analysis answer, JSON-ready (no NaN or Infinity); never raises on bad data."""
        try:
            answer = _Run(self, inp).answer()
        except Exception as exc:  # last resort: a well-formed answer rather than a 500
            answer = self._failed(inp, exc)
        return to_json_safe(answer)

    def _date(self) -> str:
        return self.clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _failed(self, inp: AnalysisInput, exc: Exception) -> dict[str, Any]:
        return failed_answer(inp, self._date(), exc)


class _Run:
    """One analysis: the intermediate results shared by the steps."""

    def __init__(self, analyzer: StatisticalAnalyzer, inp: AnalysisInput) -> None:
        self.analyzer = analyzer
        self.inp = inp
        self.warnings: list[str] = []
        conf = inp.confidence_level
        if not (isinstance(conf, int | float) and 0.0 < conf < 1.0):
            self.warnings.append(msg.WARN_BAD_CONFIDENCE.format(value=conf))
            conf = msg.DEFAULT_CONFIDENCE
        self.confidence = float(conf)
        self.alpha = alpha_of(self.confidence)
        self.method = inp.analysis_method
        self.min_sample = max(int(inp.min_sample_size), 0)
        self.variants: list[VariantInput] = list(inp.variants)
        self.control, self.treatments = self._split()
        self.specs = self._specs()
        self.summaries = metric_summaries(inp, self.specs, self.variants)
        self.labels = {v.variant_id: variant_label(v.variant_id, v.name) for v in self.variants}
        self.power = self._power()
        planned = self.power.required_units_per_variant or max(self.min_sample, 1)
        self.t_star = analyzer.sequential_t_star or inp.sequential_tuning_units or 2 * planned
        self.rho = optimal_rho(self.t_star, self.alpha)
        self.cuped: dict[str, tuple[CupedFit, list[TreatmentResult]] | None] = {}

    def _split(self) -> tuple[VariantInput | None, list[VariantInput]]:
        controls = [v for v in self.variants if v.is_control]
        if len(controls) > 1:
            self.warnings.append(
                msg.WARN_MULTIPLE_CONTROLS.format(variant_id=controls[0].variant_id)
            )
        control = controls[0] if controls else None
        return control, [v for v in self.variants if v is not control]

    def _specs(self) -> list[MetricSpec]:
        seen = {self.inp.primary_metric.name}
        specs = [self.inp.primary_metric]
        for spec in self.inp.secondary_metrics:
            if spec.name not in seen:
                seen.add(spec.name)
                specs.append(spec)
        return specs

    # --- per metric -------------------------------------------------------------------------

    def _treatment_results(self, spec: MetricSpec) -> list[TreatmentResult]:
        if self.control is None:
            return []
        sums = self.summaries[spec.name]
        treatments = [(v.variant_id, sums[v.variant_id]) for v in self.treatments]
        control = sums[self.control.variant_id]
        return compare_treatments(
            control, treatments, spec.direction, self.confidence, self.rho, spec.kind
        )

    def _metric_dict(self, spec: MetricSpec, results: Sequence[TreatmentResult]) -> dict[str, Any]:
        return {
            "kind": spec.kind,
            "direction": spec.direction,
            "guardrail": spec.guardrail,
            "variant_stats": {
                str(vid): stats_dict(s) for vid, s in self.summaries[spec.name].items()
            },
            "comparisons": [self._comparison(spec, r) for r in results],
        }

    def _comparison(self, spec: MetricSpec, r: TreatmentResult) -> dict[str, Any]:
        out = comparison_dict(r, self.method, self.alpha)
        if self.inp.covariate is not None:  # CUPED next to the raw read-out
            fitted, adjusted = self.cuped.get(spec.name) or (None, [])
            mine = next((a for a in adjusted if a.variant_id == r.variant_id), None)
            out["cuped"] = cuped_dict(fitted, mine, r, self.method, self.alpha) if fitted else None
        return out

    def _decision_results(
        self, all_results: dict[str, list[TreatmentResult]]
    ) -> dict[str, list[TreatmentResult]]:
        """With a covariate, the decision and guardrails use the CUPED-adjusted comparisons
        (where the adjustment could be made); the raw ones stay in the read-out."""
        for spec in self.specs:
            self.cuped[spec.name] = cuped_results(
                self.inp, spec, self.control, self.treatments, self.confidence, self.rho
            )
        chosen = dict(all_results)
        for name, fitted in self.cuped.items():
            if fitted is not None and fitted[1]:
                chosen[name] = fitted[1]
            if fitted is not None and fitted[0].reason == msg.COVARIATE_AVAILABILITY:
                self.warnings.append(
                    msg.WARN_COVARIATE_AVAILABILITY.format(
                        metric=name,
                        shares=availability_shares(fitted[0], self.labels),
                        p=msg.format_p(fitted[0].availability_p),
                        threshold=msg.COVARIATE_AVAILABILITY_THRESHOLD,
                    )
                )
        return chosen

    def _labelled(self, reason: str, srm: SrmResult) -> str:
        """The decision's sentence, saying which of its numbers are CUPED-adjusted."""
        adjusted = self._adjusted_metrics()
        if not adjusted or srm.flagged:
            return reason
        stop = "" if reason.endswith(".") else "."
        return f"{reason}{stop} {msg.CUPED_DECIDED.format(metrics=msg.joined(adjusted))}"

    def _adjusted_metrics(self) -> list[str]:
        """The metrics decided on their CUPED-adjusted comparisons."""
        return [name for name, fitted in self.cuped.items() if fitted is not None and fitted[1]]

    def _warn_metric(self, spec: MetricSpec, results: Sequence[TreatmentResult]) -> None:
        for vid, s in self.summaries[spec.name].items():
            if s.units_missing and s.results > 0:
                self.warnings.append(
                    msg.WARN_UNITS_MISSING.format(label=self.labels[vid], metric=spec.name)
                )
        for r in results:
            code = r.welch.reason
            if code and code != msg.NO_DATA:
                detail = msg.REASON_TEXT.get(code, code)
                self.warnings.append(
                    msg.WARN_COMPARISON.format(
                        metric=spec.name, label=self.labels[r.variant_id], detail=detail
                    )
                )

    # --- experiment level -------------------------------------------------------------------

    def _srm(self) -> SrmResult:
        return srm_check(
            [v.units_assigned if v.srm_units is None else v.srm_units for v in self.variants],
            [v.traffic_allocation for v in self.variants],
            self.analyzer.srm_threshold,
        )

    def _sample_size(self) -> tuple[bool, int, int]:
        """(sufficient, smallest units, total results) on the primary metric."""
        sums = self.summaries[self.specs[0].name]
        units = [sums[v.variant_id].units for v in self.variants]
        total = sum(sums[v.variant_id].results for v in self.variants)
        sufficient = bool(units) and self.control is not None and min(units) >= self.min_sample
        for v in self.variants:
            if sums[v.variant_id].units < self.min_sample:
                self.warnings.append(
                    msg.WARN_SMALL.format(
                        label=self.labels[v.variant_id],
                        units=sums[v.variant_id].units,
                        metric=self.specs[0].name,
                        required=self.min_sample,
                    )
                )
        return sufficient, min(units, default=0), total

    def _power(self) -> PowerResult:
        if self.control is None:
            return PowerResult(None, msg.NO_CONTROL_DATA)
        control = self.summaries[self.specs[0].name][self.control.variant_id]
        primary = self.specs[0]
        res = required_units(
            control,
            self.inp.minimum_detectable_effect,
            self.alpha,
            self.analyzer.power,
            kind=primary.kind,
            direction=primary.direction,
            planned_units=self.min_sample or None,
        )
        if res.reason:
            detail = msg.REASON_TEXT.get(res.reason, res.reason)
            self.warnings.append(msg.WARN_POWER.format(detail=detail))
        return res

    def _decision(
        self,
        results: Sequence[TreatmentResult],
        srm: SrmResult,
        sample: tuple[bool, int, int],
        regressions: dict[int, list[str]],
    ) -> Decision:
        primary = self.specs[0]
        sums = self.summaries[primary.name]
        control = sums[self.control.variant_id] if self.control is not None else None
        candidates = [
            Candidate(
                variant_id=r.variant_id,
                p_value=r.chosen_p(self.method),
                difference=r.welch.difference,
                relative_lift=r.welch.relative_lift,
                mean=sums[r.variant_id].mean,
                count=sums[r.variant_id].units,
                reason=r.chosen_reason(self.method),
                label=self.labels[r.variant_id],
            )
            for r in results
        ]
        ctx = DecisionContext(
            metric=primary,
            confidence_level=self.confidence,
            control_present=self.control is not None,
            control_mean=control.mean if control is not None else None,
            srm=srm,
            sufficient_sample_size=sample[0],
            smallest_units=sample[1],
            min_sample_size=self.min_sample,
            srm_threshold=self.analyzer.srm_threshold,
            adjusted=len(results) > 1,
            has_results=sample[2] > 0,
            control_reason=control.reason if control is not None else None,
            guardrail_regressions=regressions,
        )
        return (
            decide(ctx, candidates)
            if self.variants
            else Decision(None, None, False, msg.NO_VARIANTS)
        )

    def _rule(
        self,
        decision: Decision,
        sufficient: bool,
        deciding: Mapping[str, Sequence[TreatmentResult]],
        movements: Sequence[Any],
    ) -> dict[str, Any]:
        """The declared trade-off rule's decision (stats/decision_rule.py)."""
        winner = decision.winner_id
        control = self.control.variant_id if self.control is not None else None
        return decide_action(
            candidate=winner,
            label=self.labels.get(winner, f"Variant {winner}") if winner is not None else "",
            candidate_reason=decision.reason,
            sufficient=sufficient,
            specs=self.specs[1:],
            results=deciding,
            regressed={m.metric for m in movements if m.variant_id == winner},
            limits=self.inp.acceptable_regressions,
            method=self.method,
            control_means={
                spec.name: getattr(self.summaries.get(spec.name, {}).get(control), "mean", None)
                if control is not None
                else None
                for spec in self.specs[1:]
            },
            confidence=self.confidence,
        )

    def answer(self) -> dict[str, Any]:
        all_results = {spec.name: self._treatment_results(spec) for spec in self.specs}
        for spec in self.specs:
            self._warn_metric(spec, all_results[spec.name])
        srm = self._srm()
        if srm.flagged:
            p = msg.format_p(srm.p_value)
            self.warnings.append(msg.WARN_SRM.format(p=p, threshold=self.analyzer.srm_threshold))
        sample = self._sample_size()
        deciding = self._decision_results(all_results)
        guardrails, regressions = guardrail_checks(
            self.specs[1:], deciding, self.method, self.alpha
        )
        primary = self.specs[0]
        decision = self._decision(deciding[primary.name], srm, sample, regressions)
        movements = bad_movements(
            self.specs[1:], deciding, self.method, self.confidence, self.labels
        )
        self.warnings.extend(m.sentence() + "." for m in movements)
        rule = self._rule(decision, sample[0], deciding, movements)
        sums = self.summaries[primary.name]
        variant_stats = {
            str(v.variant_id): {
                **stats_dict(sums[v.variant_id]),
                "name": v.name,
                "is_control": v.is_control,
                "units_assigned": v.units_assigned,
            }
            for v in self.variants
        }
        ids = [str(v.variant_id) for v in self.variants]
        return {
            "experiment_id": self.inp.experiment_id,
            "analysis_date": self.analyzer._date(),
            "variant_stats": variant_stats,
            "p_value": decision.p_value,
            "is_significant": decision.is_significant,
            "recommended_winner_id": decision.winner_id if rule["action"] == SHIP else None,
            "decision": rule,
            "recommendation_confidence": decision.confidence,
            "recommendation_reason": self._labelled(
                with_movements(decision.reason, movements), srm
            ),
            "sufficient_sample_size": sample[0],
            "current_sample_size": sample[2],
            "required_sample_size": self.inp.min_sample_size,
            "analysis_method": self.method,
            "confidence_level": self.confidence,
            "primary_metric": primary.name,
            "metrics": {
                spec.name: self._metric_dict(spec, all_results[spec.name]) for spec in self.specs
            },
            "srm": srm_dict(srm, ids, self.analyzer.srm_threshold),
            "power": power_dict(
                self.power,
                self.inp.minimum_detectable_effect,
                self.analyzer.power,
                self.alpha,
                self.min_sample,
                self.t_star,
            ),
            "guardrails": guardrails,
            "regressions": [m.as_dict() for m in movements],
            "warnings": self.warnings,
            "trade_offs": trade_off_lines(
                self.specs,
                deciding,
                self.inp.ratio_metrics,
                self.confidence,
                adjusted=self._adjusted_metrics(),
            ),
        }
