"""GET /api/v1/experiments/{id}/report — the report page: one self-contained HTML document."""

from ab_testing.http import ApiRequest, HtmlPage, api
from ab_testing.runtime import analysis


@api
def handler(request: ApiRequest) -> HtmlPage:
    return HtmlPage(analysis().report(request.path_id()))
