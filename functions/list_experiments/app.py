"""GET /api/v1/experiments?status=&experiment_type=&name=&limit=&cursor= — one page of the list."""

from ab_testing.http import ApiRequest, api
from ab_testing.queries import ListQuery
from ab_testing.runtime import service


@api
def handler(request: ApiRequest) -> dict:
    return service().list_page(request.params(ListQuery))
