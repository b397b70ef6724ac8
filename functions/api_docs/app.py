"""GET /api/v1/openapi.json and GET /api/v1/docs — the API's own description, and a page to
try it (Swagger UI, loaded from a CDN by the browser; the document comes from this API)."""

from typing import Any

from ab_testing.http import ApiRequest, TextAnswer, api
from ab_testing.openapi import document

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>A/B testing API</title>
  <link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "openapi.json", dom_id: "#swagger-ui"});
  </script>
</body>
</html>
"""


def _served(request: ApiRequest) -> dict[str, Any]:
    """The document; on an execute-api host, with the stage as its server (/prod/...)."""
    doc = dict(document())
    headers = {k.lower(): v for k, v in (request.event.get("headers") or {}).items()}
    host = str(headers.get("host", ""))
    stage = (request.event.get("requestContext") or {}).get("stage")
    if host.endswith(".amazonaws.com") and stage:
        doc["servers"] = [{"url": f"https://{host}/{stage}"}]
    return doc


@api
def handler(request: ApiRequest) -> dict[str, Any] | TextAnswer:
    if request.event.get("resource", "").endswith("/docs"):
        return TextAnswer(PAGE, "text/html; charset=utf-8")
    return _served(request)
