"""GET /api/v1/experiments/{id}/insights?limit=&cursor= — analyses over time, newest first."""

from ab_testing.http import ApiRequest, api
from ab_testing.runtime import analysis


@api
def handler(request: ApiRequest) -> dict:
    return analysis().insights(
        request.path_id(), limit=request.query("limit"), cursor=request.query("cursor")
    )
