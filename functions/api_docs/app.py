"""GET /api/v1/openapi.json and GET /api/v1/docs — the API's own description, and a page to
read and try it (page.html: self-contained, it loads the document from this API only)."""

from pathlib import Path
from typing import Any

from ab_testing.http import ApiRequest, TextAnswer, api
from ab_testing.openapi import document

# Everything the page needs is in it (no CDN, no other origin: it works offline and behind a
# strict proxy, and no third party's script runs with this API's origin).
PAGE = (Path(__file__).with_name("page.html")).read_text(encoding="utf-8")


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
