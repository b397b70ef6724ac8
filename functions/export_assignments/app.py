"""GET /api/v1/experiments/{id}/assignments?format=json|jsonl|csv&limit=&cursor= — assignments."""

from ab_testing import export
from ab_testing.http import ApiRequest, TextAnswer, api
from ab_testing.queries import ExportQuery
from ab_testing.runtime import service


@api
def handler(request: ApiRequest) -> dict | TextAnswer:
    experiment_id = request.path_id()
    return export.assignments(service().store, experiment_id, request.params(ExportQuery))
