"""GET /api/v1/experiments/definitions — what a client needs to assign units itself.

Data plane, polled: an unchanged document answers 304 to its ETag (If-None-Match).
"""

from ab_testing.http import ApiRequest, Reply, api
from ab_testing.runtime import local_evaluation


@api
def handler(request: ApiRequest) -> Reply:
    document, etag = local_evaluation().definitions()
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag in [t.strip() for t in (request.header("If-None-Match") or "").split(",")]:
        return Reply(304, None, headers)
    return Reply(200, document, headers)
