"""GET /api/v1/experiments/definitions — what a client needs to assign units itself.

Data plane, polled: an unchanged document answers 304 to its ETag (If-None-Match).
"""

import json

from ab_testing.http import ApiRequest, TextAnswer, api, json_safe
from ab_testing.runtime import local_evaluation


@api
def handler(request: ApiRequest) -> TextAnswer:
    document, etag = local_evaluation().definitions()
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag in [t.strip() for t in (request.header("If-None-Match") or "").split(",")]:
        return TextAnswer("", "application/json", headers, status=304)
    text = json.dumps(json_safe(document), allow_nan=False, separators=(",", ":"))
    return TextAnswer(text, "application/json", headers)
