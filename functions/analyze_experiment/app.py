"""GET /api/v1/experiments/{id}/analyze — the statistical analysis from running totals."""

from ab_testing.http import ApiRequest, api
from ab_testing.runtime import analysis


@api
def handler(request: ApiRequest) -> dict:
    return analysis().analyze(request.path_id())
