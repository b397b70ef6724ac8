"""The import path the product guide uses: ``from ab_testing.experiment_service import ...``."""

from ab_testing.service import ExperimentService

__all__ = ["ExperimentService"]
