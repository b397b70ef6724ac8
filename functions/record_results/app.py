"""POST /api/v1/experiments/record-results — up to 100 results, each answered on its own,
written one transaction per (variant, metric, shard) of the batch."""

from ab_testing.http import ApiRequest, api
from ab_testing.runtime import service


@api
def handler(request: ApiRequest) -> dict:
    return service().record_many(request.json())
