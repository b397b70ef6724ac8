"""ANY on every resource — the methods the resource does not define: 405 with Allow.

API Gateway picks a resource's own method first and falls back to its ANY method, so this
answers only methods the API does not have (API Gateway alone would answer 403/404).
"""

import json

from ab_testing.contract import allowed_methods
from ab_testing.http import ApiRequest, TextAnswer, api


@api
def handler(request: ApiRequest) -> TextAnswer:
    methods = [*allowed_methods(request.event.get("resource", "")), "OPTIONS"]
    allow = ", ".join(methods)
    if request.method == "OPTIONS":
        return TextAnswer("", "text/plain", {"Allow": allow}, status=204)
    body = {
        "error": "method_not_allowed",
        "message": f"{request.method} is not allowed here; allowed: {allow}",
        "allowed_methods": methods,
    }
    return TextAnswer(json.dumps(body), "application/json", {"Allow": allow}, status=405)
