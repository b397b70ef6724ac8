"""POST /api/v1/experiments/record-results — up to 100 results, each on its own."""

from ab_testing.http import ApiRequest, api
from ab_testing.runtime import service


@api
def handler(request: ApiRequest) -> dict:
    return service().record_many(request.json())
