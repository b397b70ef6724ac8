"""GET /api/v1/experiments/{id}/segments?attribute=&metric= — one metric by segment."""

from ab_testing.http import ApiRequest, api
from ab_testing.queries import SegmentsQuery
from ab_testing.runtime import analysis


@api
def handler(request: ApiRequest) -> dict:
    return analysis().segments(request.path_id(), request.params(SegmentsQuery))
