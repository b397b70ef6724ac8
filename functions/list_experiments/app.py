"""GET /api/v1/experiments/?status=&experiment_type= — list experiments."""

from ab_testing.http import ApiRequest, api
from ab_testing.runtime import service


@api
def handler(request: ApiRequest) -> dict:
    found = service().list_experiments(
        status=request.query("status"), experiment_type=request.query("experiment_type")
    )
    return {"experiments": found, "count": len(found)}
