"""The guide's ``StatisticalAnalyzer.analyze_experiment(...)``, reading running totals.

``StatisticalAnalyzer(db).analyze_experiment(experiment_id)`` takes ``db`` as
``ExperimentService`` does (a Store, a boto3 DynamoDB client, or None for the environment's
tables). ``analyze(AnalysisInput)`` stays available for sufficient statistics you already have.
"""

from __future__ import annotations

from typing import Any

from ab_testing.stats.analyzer import StatisticalAnalyzer as _PureAnalyzer


class StatisticalAnalyzer(_PureAnalyzer):
    def __init__(self, db: Any = None, **options: Any) -> None:
        super().__init__(**options)
        self._db = db

    def analyze_experiment(self, experiment_id: int, method: str | None = None) -> dict[str, Any]:
        from ab_testing.analysis import ExperimentAnalysis
        from ab_testing.service import ExperimentService

        analysis = ExperimentAnalysis(ExperimentService(self._db))
        return analysis.analyze(experiment_id, method=method, analyzer=self)


__all__ = ["StatisticalAnalyzer"]
