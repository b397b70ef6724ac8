"""POST /api/v1/experiments/{id}/pause — a lifecycle transition (409 when not allowed)."""

from ab_testing.http import ApiRequest, api
from ab_testing.runtime import service


@api
def handler(request: ApiRequest) -> dict:
    return service().change_status(request.path_id(), "pause")
