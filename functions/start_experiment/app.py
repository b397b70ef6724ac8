"""POST /api/v1/experiments/{id}/start — draft to running."""

from ab_testing.http import ApiRequest, api
from ab_testing.runtime import service


@api
def handler(request: ApiRequest) -> dict:
    return service().start_experiment(request.path_id())
