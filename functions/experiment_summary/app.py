"""GET /api/v1/experiments/{id}/summary — units assigned and results collected per variant."""

from ab_testing.http import ApiRequest, api
from ab_testing.runtime import analysis


@api
def handler(request: ApiRequest) -> dict:
    return analysis().summary(request.path_id())
