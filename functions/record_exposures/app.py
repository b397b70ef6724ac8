"""POST /api/v1/experiments/exposures — up to 100 units a client assigned itself, in order."""

from ab_testing.http import ApiRequest, api
from ab_testing.runtime import local_evaluation


@api
def handler(request: ApiRequest) -> dict:
    return local_evaluation().record_exposures(request.json())
