"""GET /api/v1/experiments/{id} — one experiment with its variants."""

from ab_testing.http import ApiRequest, api
from ab_testing.runtime import service


@api
def handler(request: ApiRequest) -> dict:
    experiment = service().get_experiment(request.path_id())
    return experiment.as_fields()
