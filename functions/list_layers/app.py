"""GET /api/v1/layers — the layers, the ranges their experiments hold, and what is free."""

from ab_testing.http import ApiRequest, api
from ab_testing.runtime import service


@api
def handler(request: ApiRequest) -> dict:
    return service().list_layers()
