"""GET /api/v1/experiments/{id}/reconciliation — running totals checked against raw results."""

from ab_testing.http import ApiRequest, api
from ab_testing.runtime import analysis


@api
def handler(request: ApiRequest) -> dict:
    return analysis().reconcile(request.path_id())
