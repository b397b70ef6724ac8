"""POST /api/v1/experiments/get-variant — the unit's sticky variant (hot path: no scipy)."""

from ab_testing.http import ApiRequest, api
from ab_testing.runtime import service


@api
def handler(request: ApiRequest) -> dict:
    return service().get_variant(request.json())
