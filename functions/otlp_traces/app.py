"""POST /api/v1/otlp/v1/traces — OTLP/HTTP traces in, experiment results out (data plane).

An OpenTelemetry exporter sends ExportTraceServiceRequest as protobuf (the default, gzipped
or not) or as uncompressed JSON; the answer is ExportTraceServiceResponse in the same encoding.
"""

import json

from ab_testing.errors import InvalidInput
from ab_testing.http import ApiRequest, BinaryAnswer, TextAnswer, api
from ab_testing.otlp import MalformedTraces, decode, ingest, media_type, response_protobuf
from ab_testing.runtime import service


@api
def handler(request: ApiRequest) -> BinaryAnswer | TextAnswer:
    content_type = request.header("Content-Type") or ""
    kind = media_type(content_type)
    encoding = (request.header("Content-Encoding") or "").strip().lower()
    if encoding not in ("", "identity") and kind == "application/json":
        # Deployed, API Gateway passes a JSON body as text (only protobuf is a binary media
        # type), so compressed JSON would arrive damaged: refused here as there.
        raise InvalidInput(
            "OTLP/JSON is taken uncompressed; compress protobuf (application/x-protobuf) instead",
            field="Content-Encoding",
        )
    try:
        spans = decode(request.body_bytes(), content_type)
    except MalformedTraces as exc:
        raise InvalidInput(str(exc), field="body") from None
    answer = ingest(service(), spans)
    if kind == "application/x-protobuf":
        return BinaryAnswer(response_protobuf(answer), "application/x-protobuf")
    return TextAnswer(json.dumps(_json_answer(answer)), "application/json")


def _json_answer(answer: dict) -> dict:
    partial = answer.get("partial_success")
    if not partial:
        return {}
    return {
        "partialSuccess": {
            "rejectedSpans": str(partial["rejected_spans"]),
            "errorMessage": partial["error_message"],
        }
    }
