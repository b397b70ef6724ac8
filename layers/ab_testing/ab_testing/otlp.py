"""OTLP/HTTP traces in: the spans of instrumented LLM calls become experiment results.

``decode(body, content_type)`` reads an ExportTraceServiceRequest in either encoding of the
OTLP specification (protobuf, read here with a small wire-format reader of the fields it
needs, or JSON) into ``Span`` records. ``results_of(span, experiment, prices)`` turns one span
into result items for record-results: the experiment's declared metrics only, each keyed by
the trace and span id so that an exporter's retry is counted once. Which experiment and unit a
span belongs to comes from its attributes (or its resource's): ``ab_testing.experiment`` (or
``ab_testing.experiment_id``) and ``user.id`` (or ``session.id``); the variant is always the
one the ledger holds for that unit. The mapping is in docs/otlp.md.
"""

from __future__ import annotations

import base64
import json
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ab_testing.errors import DomainError, StoreUnavailable
from ab_testing.results import MAX_BATCH

if TYPE_CHECKING:
    from ab_testing.service import ExperimentService

EXPERIMENT = "ab_testing.experiment"
EXPERIMENT_ID = "ab_testing.experiment_id"
USER = "user.id"
SESSION = "session.id"
EVALUATION_EVENT = "gen_ai.evaluation.result"
FIRST_TOKEN_EVENT = "gen_ai.first_token"  # an event at the first token, if the app emits one
ERROR_STATUS = 2

# USD per million tokens (input, output), as published by each provider on PRICES_TAKEN.
# An experiment's own `prices` override these; a model found in neither gets no cost_usd.
PRICES_TAKEN = "2026-12-01"
PRICES: dict[str, tuple[str, str]] = {
    "gpt-4o": ("2.50", "10.00"),
    "gpt-4o-mini": ("0.15", "0.60"),
    "gpt-4.1": ("2.00", "8.00"),
    "gpt-4.1-mini": ("0.40", "1.60"),
    "claude-3-5-haiku": ("0.80", "4.00"),
    "claude-sonnet-4": ("3.00", "15.00"),
}


@dataclass(frozen=True)
class Event:
    name: str
    time_ns: int
    attributes: dict[str, Any]


@dataclass(frozen=True)
class Span:
    trace_id: str  # hex
    span_id: str  # hex
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    resource: dict[str, Any] = field(default_factory=dict)
    events: tuple[Event, ...] = ()
    status_code: int = 0
    parent_id: str = ""  # hex; "" for a root span

    def attribute(self, key: str) -> Any:
        """The span's attribute, else its resource's."""
        value = self.attributes.get(key)
        return self.resource.get(key) if value is None else value


class MalformedTraces(ValueError):
    """The body is not an ExportTraceServiceRequest in the encoding it claims."""


# ------------------------------------------------------------------------------ decoding
def media_type(content_type: str) -> str:
    """The media type of a Content-Type header, without parameters, in lower case."""
    return content_type.split(";")[0].strip().lower()


def decode(body: bytes, content_type: str) -> list[Span]:
    kind = media_type(content_type)
    if kind == "application/x-protobuf":
        return decode_protobuf(body)
    if kind == "application/json":
        return decode_json(body)
    raise MalformedTraces(
        f"Content-Type {content_type!r}: OTLP/HTTP sends application/x-protobuf or application/json"
    )


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise MalformedTraces("a varint runs past the end of the body")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, Any]]:
    """(field number, value) of one protobuf message: ints for varints, bytes otherwise."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, at = _varint(data, at)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, at = bytes(data[at : at + size]), at + size
        elif wire == 2:
            size, at = _varint(data, at)
            value, at = bytes(data[at : at + size]), at + size
        else:
            raise MalformedTraces(f"wire type {wire} is not used by OTLP")
        if at > len(data):
            raise MalformedTraces("a field runs past the end of the body")
        yield number, value


def _b(value: Any, size: int | None = None) -> bytes:
    """A field's bytes (length-delimited, or fixed64 when size is 8), else malformed."""
    if not isinstance(value, bytes) or (size is not None and len(value) != size):
        raise MalformedTraces("a field has another wire type than OTLP gives it")
    return value


def _i(value: Any) -> int:
    if not isinstance(value, int):
        raise MalformedTraces("a field has another wire type than OTLP gives it")
    return value


def _text(value: Any) -> str:
    try:
        return _b(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedTraces("a string is not UTF-8") from exc


def _any_value(data: bytes) -> Any:
    for number, value in _fields(data):
        if number == 1:
            return _text(value)
        if number == 2:
            return bool(_i(value))
        if number == 3:
            return _i(value) - (1 << 64) if _i(value) >= 1 << 63 else value
        if number == 4:
            return struct.unpack("<d", _b(value, 8))[0]
        if number == 5:
            return [_any_value(_b(v)) for n, v in _fields(_b(value)) if n == 1]
        if number == 6:
            return _key_values([_b(v) for n, v in _fields(_b(value)) if n == 1])
        if number == 7:
            return base64.b64encode(_b(value)).decode()
    return None


def _key_values(items: list[bytes]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in items:
        key, value = "", None
        for number, part in _fields(_b(item)):
            if number == 1:
                key = _text(part)
            elif number == 2:
                value = _any_value(_b(part))
        found[key] = value
    return found


def decode_protobuf(body: bytes) -> list[Span]:
    spans: list[Span] = []
    for number, resource_spans in _fields(body):
        if number != 1:
            continue
        resource: dict[str, Any] = {}
        scopes: list[bytes] = []
        for part, value in _fields(_b(resource_spans)):
            if part == 1:
                resource = _key_values([_b(v) for n, v in _fields(_b(value)) if n == 1])
            elif part == 2:
                scopes.append(_b(value))
        for scope in scopes:
            for part, value in _fields(scope):
                if part == 2:
                    spans.append(_protobuf_span(_b(value), resource))
    return spans


def _protobuf_span(data: bytes, resource: dict[str, Any]) -> Span:
    fields: dict[str, Any] = {"attributes": [], "events": [], "status": 0}
    names = {1: "trace_id", 2: "span_id", 4: "parent_id", 5: "name", 7: "start", 8: "end"}
    for number, value in _fields(data):
        if number in (1, 2, 4):
            fields[names[number]] = _b(value).hex()
        elif number == 5:
            fields["name"] = _text(value)
        elif number in (7, 8):
            fields[names[number]] = int.from_bytes(_b(value, 8), "little")
        elif number == 9:
            fields["attributes"].append(_b(value))
        elif number == 11:
            fields["events"].append(_protobuf_event(_b(value)))
        elif number == 15:
            fields["status"] = _i(next((v for n, v in _fields(_b(value)) if n == 3), 0))
    return Span(
        trace_id=fields.get("trace_id", ""),
        span_id=fields.get("span_id", ""),
        name=fields.get("name", ""),
        start_ns=fields.get("start", 0),
        end_ns=fields.get("end", 0),
        attributes=_key_values(fields["attributes"]),
        resource=resource,
        events=tuple(fields["events"]),
        status_code=int(fields["status"]),
        parent_id=fields.get("parent_id", ""),
    )


def _protobuf_event(data: bytes) -> Event:
    time_ns, name, attributes = 0, "", []
    for number, value in _fields(data):
        if number == 1:
            time_ns = int.from_bytes(_b(value, 8), "little")
        elif number == 2:
            name = _text(value)
        elif number == 3:
            attributes.append(_b(value))
    return Event(name, time_ns, _key_values(attributes))


def decode_json(body: bytes) -> list[Span]:
    try:
        document = json.loads(body)
        if not isinstance(document, dict):
            raise TypeError("the body is not a JSON object")
        return [
            _json_span(span, _json_attributes(_object(rs.get("resource")).get("attributes")))
            for rs in _objects(document, "resourceSpans")
            for scope in _objects(rs, "scopeSpans")
            for span in _objects(scope, "spans")
        ]
    except (ValueError, AttributeError, TypeError, KeyError) as exc:
        raise MalformedTraces(f"not an OTLP/JSON ExportTraceServiceRequest: {exc}") from exc


def _objects(parent: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """parent[key] as a list of JSON objects (missing: none), else TypeError."""
    items = parent.get(key, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise TypeError(f"{key} must be a list of objects")
    return items


def _object(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError("resource must be an object")
    return value


_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


def _json_span(span: dict[str, Any], resource: dict[str, Any]) -> Span:
    code = (span.get("status") or {}).get("code", 0)
    return Span(
        trace_id=str(span.get("traceId", "")).lower(),
        span_id=str(span.get("spanId", "")).lower(),
        name=str(span.get("name", "")),
        start_ns=int(span.get("startTimeUnixNano", 0)),
        end_ns=int(span.get("endTimeUnixNano", 0)),
        attributes=_json_attributes(span.get("attributes")),
        resource=resource,
        events=tuple(
            Event(
                str(e.get("name", "")),
                int(e.get("timeUnixNano", 0)),
                _json_attributes(e.get("attributes")),
            )
            for e in span.get("events") or []
        ),
        status_code=_STATUS_NAMES.get(code, 0) if isinstance(code, str) else int(code),
        parent_id=str(span.get("parentSpanId", "")).lower(),
    )


def _json_attributes(items: Any) -> dict[str, Any]:
    if items is not None and not isinstance(items, list):
        raise TypeError("attributes must be a list")
    return {str(i["key"]): _json_value(i.get("value") or {}) for i in items or []}


def _json_value(value: dict[str, Any]) -> Any:
    if "stringValue" in value:
        return str(value["stringValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "intValue" in value:
        return int(value["intValue"])  # int64 travels as a string in OTLP/JSON
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "arrayValue" in value:
        return [_json_value(v) for v in value["arrayValue"].get("values") or []]
    if "kvlistValue" in value:
        return _json_attributes(value["kvlistValue"].get("values"))
    if "bytesValue" in value:
        return str(value["bytesValue"])
    return None


# ------------------------------------------------------------------------- spans to results
def price_of(model: str | None, prices: dict[str, dict[str, float]]) -> tuple[Decimal, Decimal]:
    """(input, output) USD per million tokens of a model, or KeyError when it has none."""
    if model is None:
        raise KeyError("no model")
    own = prices.get(model)
    if own is not None:
        return Decimal(repr(own["input_per_million"])), Decimal(repr(own["output_per_million"]))
    listed = PRICES[model]
    return Decimal(listed[0]), Decimal(listed[1])


def measures(span: Span, prices: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Every metric a span of a model call (one with gen_ai.* attributes) gives, whether or
    not an experiment declares it; nothing for other spans (an HTTP request, a database)."""
    found: dict[str, Any] = {}
    if not _model_call(span):
        return found
    tokens_in = span.attributes.get("gen_ai.usage.input_tokens")
    tokens_out = span.attributes.get("gen_ai.usage.output_tokens")
    if isinstance(tokens_in, int) and not isinstance(tokens_in, bool):
        found["input_tokens"] = tokens_in
    if isinstance(tokens_out, int) and not isinstance(tokens_out, bool):
        found["output_tokens"] = tokens_out
    if span.end_ns >= span.start_ns > 0:
        found["latency_ms"] = Decimal(span.end_ns - span.start_ns) / Decimal(1_000_000)
    first = next((e for e in span.events if e.name == FIRST_TOKEN_EVENT), None)
    ttft = span.attributes.get("gen_ai.server.time_to_first_token")  # seconds
    if first is not None and first.time_ns >= span.start_ns > 0:
        found["time_to_first_token_ms"] = Decimal(first.time_ns - span.start_ns) / 1_000_000
    elif isinstance(ttft, int | float) and not isinstance(ttft, bool):
        found["time_to_first_token_ms"] = Decimal(repr(ttft)) * 1000
    if "input_tokens" in found and "output_tokens" in found:
        model = span.attributes.get("gen_ai.response.model") or span.attributes.get(
            "gen_ai.request.model"
        )
        try:
            price_in, price_out = price_of(model, prices)
        except KeyError:
            found["unpriced_model"] = model
        else:
            found["cost_usd"] = (
                found["input_tokens"] * price_in + found["output_tokens"] * price_out
            ) / Decimal(1_000_000)
    error = span.attributes.get("error.type") is not None or span.status_code == ERROR_STATUS
    found["error_rate"] = 1 if error else 0
    return found


_LINKS = (EXPERIMENT, EXPERIMENT_ID, USER, SESSION)


def with_links(spans: list[Span]) -> list[Span]:
    """Each span with the experiment and unit attributes it or its nearest ancestor in the
    same request carries: the client sets them on the span around a model call, and the
    instrumentation's span of the call is its child."""
    by_id = {(s.trace_id, s.span_id): s for s in spans}
    linked = []
    for span in spans:
        own = {k: span.attribute(k) for k in _LINKS if span.attribute(k) is not None}
        parent, hops = by_id.get((span.trace_id, span.parent_id)), 0
        while parent is not None and hops < 64 and not own:
            own = {k: parent.attribute(k) for k in _LINKS if parent.attribute(k) is not None}
            parent, hops = by_id.get((parent.trace_id, parent.parent_id)), hops + 1
        linked.append(replace(span, attributes={**own, **span.attributes}) if own else span)
    return linked


def evaluations(span: Span) -> list[tuple[str, float]]:
    """(metric name, score) of each evaluation event of the span."""
    scores = []
    for event in span.events:
        if event.name != EVALUATION_EVENT:
            continue
        name = event.attributes.get("gen_ai.evaluation.name")
        score = event.attributes.get("gen_ai.evaluation.score.value")
        if isinstance(name, str) and isinstance(score, int | float) and not isinstance(score, bool):
            scores.append((name, float(score)))
    return scores


def occurred_at(span: Span) -> str | None:
    if span.end_ns <= 0:
        return None
    return datetime.fromtimestamp(span.end_ns / 1e9, UTC).isoformat()


# --------------------------------------------------------------------------------- ingesting
def ingest(service: ExperimentService, spans: list[Span]) -> dict[str, Any]:
    """Records what the spans give, in batches of record-results; answers the OTLP response
    (as a dict): partial_success when some spans gave nothing that counted, with why.

    When DynamoDB cannot be reached or keeps refusing (a 503), the whole request is a 503, so
    that the exporter sends it again (OTLP exporters retry 503): what was already recorded is
    then a duplicate and counts once. A partial success is never retried, so it is kept for
    spans that cannot count however often they are sent."""
    rejected: Counter[str] = Counter()
    unpriced: Counter[tuple[int, str]] = Counter()  # spans with no cost_usd for want of a price
    items, owner = _collect(service, spans, rejected, unpriced)
    _record(service, items, owner, rejected)
    _note_unpriced(service, unpriced)
    if not rejected:
        return {}
    message = "; ".join(f"{count} spans: {why}" for why, count in sorted(rejected.items()))
    return {"partial_success": {"rejected_spans": sum(rejected.values()), "error_message": message}}


def _collect(
    service: ExperimentService,
    spans: list[Span],
    rejected: Counter[str],
    unpriced: Counter[tuple[int, str]],
) -> tuple[list[dict[str, Any]], list[int]]:
    """The result items of the spans and, per item, the index of its span."""
    items: list[dict[str, Any]] = []
    owner: list[int] = []
    for index, span in enumerate(with_links(spans)):
        if not _ours(span):
            continue
        try:
            made = _items(service, span, unpriced)
        except DomainError as exc:
            if exc.status >= 500:
                raise
            rejected[f"{exc.body().get('message', exc.code)}"] += 1
            continue
        if isinstance(made, str):
            rejected[made] += 1
            continue
        items += made
        owner += [index] * len(made)
    return items, owner


def _record(
    service: ExperimentService, items: list[dict[str, Any]], owner: list[int], rejected: Counter
) -> None:
    """Sends the items to record-results; a span none of whose results counted is rejected."""
    counted: set[int] = set()
    failures: dict[int, str] = {}
    for start in range(0, len(items), MAX_BATCH):
        answer = service.record_many({"results": items[start : start + MAX_BATCH]})
        if any(result["status"] >= 500 for result in answer["results"]):
            raise StoreUnavailable("DynamoDB did not take every result: send the spans again")
        for offset, result in enumerate(answer["results"]):
            span_index = owner[start + offset]
            if result.get("recorded"):
                counted.add(span_index)
            else:
                failures[span_index] = str(result.get("reason") or result.get("error"))
    for span_index, reason in failures.items():
        if span_index not in counted:
            rejected[_REASONS.get(reason, reason)] += 1


def _ours(span: Span) -> bool:
    """A span that can give results: a model call (gen_ai.* attributes) or one carrying an
    evaluation. The app's other spans (its requests, its queries, the span the client
    annotated around a call) are passed over, neither counted nor rejected."""
    return _model_call(span) or any(e.name == EVALUATION_EVENT for e in span.events)


def _model_call(span: Span) -> bool:
    return any(key.startswith("gen_ai.") for key in span.attributes)


def _note_unpriced(service: ExperimentService, unpriced: Counter[tuple[int, str]]) -> None:
    """One update per experiment of the spans that had no price for their model."""
    by_experiment: dict[int, dict[str, int]] = {}
    for (experiment_id, model), count in unpriced.items():
        by_experiment.setdefault(experiment_id, {})[model] = count
    for experiment_id, models in by_experiment.items():
        service.store.count_unpriced_spans(experiment_id, models)


_REASONS = {
    "no_assignment": "the unit has no variant in the experiment (ask get-variant first)",
    "experiment_not_running": "the experiment is not running or paused",
    "override": "the unit is pinned by overrides, which are not analysed",
}


def _items(
    service: ExperimentService, span: Span, unpriced: Counter[tuple[int, str]]
) -> list[dict[str, Any]] | str:
    """The span's result items for record-results, or why it gives none. A span that could
    not give the declared cost_usd for want of a price is counted in ``unpriced``."""
    name, number = span.attribute(EXPERIMENT), span.attribute(EXPERIMENT_ID)
    if name is None and number is None:
        return f"no {EXPERIMENT} or {EXPERIMENT_ID} attribute"
    user, session = span.attribute(USER), span.attribute(SESSION)
    if user is None and session is None:
        return f"no {USER} or {SESSION} attribute"
    try:
        experiment_id = None if number is None else int(number)
    except (TypeError, ValueError):
        return f"{EXPERIMENT_ID} is not an integer"
    experiment = service._experiment(None if name is None else str(name), experiment_id)
    declared = set(experiment.declared_metrics)
    unit = {"user_id": user} if user is not None else {"session_id": str(session)}
    base = {"experiment_id": experiment.id, **unit, "occurred_at": occurred_at(span)}
    key = f"otlp:{span.trace_id}:{span.span_id}"
    found = measures(span, experiment.prices)
    unpriced_model = found.get("unpriced_model") if "cost_usd" in declared else None
    if unpriced_model:
        unpriced[(experiment.id, str(unpriced_model))] += 1
    made = [
        {**base, "metric_name": metric, "metric_value": value, "idempotency_key": key}
        for metric, value in found.items()
        if metric in declared
    ]
    made += [
        {**base, "metric_name": metric, "metric_value": score, "idempotency_key": f"{key}:{metric}"}
        for metric, score in evaluations(span)
        if metric in declared
    ]
    if not made:
        if unpriced_model:
            return f"model {unpriced_model!r} has no price: no cost_usd"
        return "no metric the experiment declares"
    return made


def response_protobuf(answer: dict[str, Any]) -> bytes:
    """ExportTraceServiceResponse in protobuf: field 1, partial_success {1: rejected, 2: why}."""
    partial = answer.get("partial_success")
    if not partial:
        return b""
    message = str(partial["error_message"]).encode()
    inner = _tag(1, 0) + _encode_varint(int(partial["rejected_spans"]))
    inner += _tag(2, 2) + _encode_varint(len(message)) + message
    return _tag(1, 2) + _encode_varint(len(inner)) + inner


def _tag(number: int, wire: int) -> bytes:
    return _encode_varint(number << 3 | wire)


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)
