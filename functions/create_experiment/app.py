"""POST /api/v1/experiments/ — create an experiment in draft."""

from ab_testing.http import ApiRequest, api
from ab_testing.runtime import service


@api
def handler(request: ApiRequest) -> tuple[int, dict]:
    return 201, service().create_experiment(request.json())
