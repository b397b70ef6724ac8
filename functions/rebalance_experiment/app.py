"""PATCH /api/v1/experiments/{id} — new allocations / target_percentage for new units only,
and/or new acceptable_regressions (kept with their history)."""

from ab_testing.http import ApiRequest, api
from ab_testing.runtime import service


@api
def handler(request: ApiRequest) -> dict:
    return service().rebalance(request.path_id(), request.json())
