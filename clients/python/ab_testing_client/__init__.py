"""Python client for the serverless A/B testing service.

from ab_testing_client import ABTestingClient

client = ABTestingClient("http://localhost:8000")
variant = client.get_variant("Lead Qualification Prompt Test", user_id=123)
"""

from ab_testing_client.aio import AsyncABTestingClient
from ab_testing_client.answers import ClientStats, Refusal, Variant
from ab_testing_client.client import ABTestingClient
from ab_testing_client.run import Run
from ab_testing_client.transport import ABTestingError, Rejected, Unavailable

__all__ = [
    "ABTestingClient",
    "AsyncABTestingClient",
    "ABTestingError",
    "ClientStats",
    "Refusal",
    "Rejected",
    "Run",
    "Unavailable",
    "Variant",
]
