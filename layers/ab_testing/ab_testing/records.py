"""How domain records map to DynamoDB items and keys (the layout is in docs/data-model.md)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import defaultdict
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ab_testing import dynamo
from ab_testing.errors import InvalidInput
from ab_testing.experiment import Experiment, Variant

if TYPE_CHECKING:
    from ab_testing.models import ExperimentIn
from ab_testing.stats.inputs import MetricTotals, RatioTotals

# Composite keys are injective by construction: each part is escaped ("%" -> "%25",
# "#" -> "%23") before the parts are joined with "#", so no part holds a separator and splitting
# on "#" gives back exactly the parts. Parts free of "#" and "%" are written as they are, so
# keys of ordinary ids read as before (docs/data-model.md, "Keys").
SEPARATOR = "#"


def key_part(value: str | int) -> str:
    return str(value).replace("%", "%25").replace(SEPARATOR, "%23")


def composite(tag: str, *parts: str | int) -> str:
    """``tag#part#part...`` with every part escaped: distinct tuples give distinct keys."""
    return SEPARATOR.join((tag, *(key_part(p) for p in parts)))


def split_composite(key: str) -> tuple[str, ...]:
    """The inverse of composite: (tag, part, ...)."""
    return tuple(p.replace("%23", SEPARATOR).replace("%25", "%") for p in key.split(SEPARATOR))


def experiment_pk(experiment_id: int) -> str:
    return composite("experiment", experiment_id)


def name_pk(name: str) -> str:
    """The item that holds an experiment name (a conditional put keeps names unique)."""
    return composite("name", name)


def layer_pk(layer: str) -> str:
    """The item that lists the experiments running (or paused) in a layer, with their ranges."""
    return composite("layer", layer)


def variant_sk(variant_id: int) -> str:
    return composite("variant", f"{variant_id:010d}")


def totals_sk(variant_id: int, metric: str, shard: int) -> str:
    return composite("totals", f"{variant_id:010d}", metric, f"{shard:03d}")


def ratio_sk(variant_id: int, ratio: str, shard: int) -> str:
    return composite("ratio", f"{variant_id:010d}", ratio, f"{shard:03d}")


def exposure_sk(variant_id: int, shard: int) -> str:
    return composite("exposure", f"{variant_id:010d}", f"{shard:03d}")


def keyed_result_id(metric: str, unit: str, idempotency_key: str) -> str:
    """A keyed result's id: the key is scoped to its (unit, metric)."""
    return composite("key", metric, unit, idempotency_key)


def auto_result_id(now: str, token: str) -> str:
    return composite("auto", now, token)


def encode_cursor(analysed_at: str) -> str:
    return base64.urlsafe_b64encode(analysed_at.encode()).decode()


_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T[0-9:.]{1,20}Z$")


def decode_cursor(cursor: str) -> str:
    """The analysed_at a page ended on; anything else is refused before it reaches DynamoDB."""
    try:
        stamp = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput("cursor is not valid", field="cursor") from exc
    if len(cursor) > 64 or not _STAMP.match(stamp):
        raise InvalidInput("cursor is not valid", field="cursor")
    return stamp


def encode_list_cursor(experiment_id: int) -> str:
    return base64.urlsafe_b64encode(f"after:{experiment_id}".encode()).decode()


def decode_list_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput("cursor is not valid", field="cursor") from exc
    kind, _, number = text.partition(":")
    if kind != "after" or not re.fullmatch(r"[1-9][0-9]{0,14}", number):
        raise InvalidInput("cursor is not valid", field="cursor")
    return int(number)


def new_experiment(
    body: ExperimentIn, experiment_id: int, last_variant_id: int, salt: str, now: str
) -> Experiment:
    variants = [
        Variant(id=last_variant_id + i + 1, **v.model_dump()) for i, v in enumerate(body.variants)
    ]
    data = body.model_dump(exclude={"variants"})
    return Experiment.from_fields(
        {**data, "id": experiment_id, "variants": variants, "salt": salt, "created_at": now}
    )


def experiment_item(experiment: Experiment) -> dict[str, Any]:
    data = experiment.as_fields(exclude={"variants", "id", "unpriced_spans"})
    return {"pk": experiment_pk(experiment.id), "experiment_id": experiment.id, **data}


UNPRICED = "unpriced#"  # per model: spans that gave no cost_usd for want of a price


def experiment_from_item(item: dict[str, Any], variants: list[Variant]) -> Experiment:
    data = dynamo.plain({k: v for k, v in item.items() if k not in ("pk", "experiment_id")})
    unpriced = {k[len(UNPRICED) :]: int(data.pop(k)) for k in list(data) if k.startswith(UNPRICED)}
    return Experiment.from_fields(
        {**data, "id": int(item["experiment_id"]), "variants": variants, "unpriced_spans": unpriced}
    )


def variant_item(experiment_id: int, variant: Variant) -> dict[str, Any]:
    return {
        "experiment_id": experiment_id,
        "sk": variant_sk(variant.id),
        "variant_id": variant.id,
        "name": variant.name,
        "description": variant.description,
        "is_control": variant.is_control,
        "traffic_allocation": variant.traffic_allocation,
        # Free-form config is kept verbatim as JSON: no float/Decimal round trip changes it.
        "config_json": json.dumps(variant.config, separators=(",", ":")),
    }


def variant_from_item(item: dict[str, Any]) -> Variant:
    return Variant(
        id=int(item["variant_id"]),
        name=item["name"],
        description=item.get("description", ""),
        is_control=bool(item["is_control"]),
        traffic_allocation=float(item["traffic_allocation"]),
        config=json.loads(item.get("config_json") or "{}"),
    )


def totals_from_item(item: dict[str, Any]) -> MetricTotals:
    return MetricTotals(
        results=int(item.get("results", 0)),
        total=item.get("total", Decimal(0)),
        total_sq=item.get("total_sq", Decimal(0)),
        min=item.get("min_y"),
        max=item.get("max_y"),
        units=int(item.get("units", 0)),
        unit_sum_sq=item.get("unit_sum_sq", Decimal(0)),
        unit_count_sq=item.get("unit_count_sq", Decimal(0)),
        unit_sum_count=item.get("unit_sum_count", Decimal(0)),
        cov_units=int(item.get("cov_units", 0)),
        **{f: item.get(f, Decimal(0)) for f in _COVARIATE_SUMS},
    )


_COVARIATE_SUMS = ("cov_sum", "cov_sum_sq", "cov_x_sum", "cov_x_count", "cov_h_sum", "cov_h_count")


def summed_ratios(items: list[dict[str, Any]]) -> dict[tuple[int, str], RatioTotals]:
    """What each ratio metric keeps per (variant id, ratio name), shards added up."""
    totals: dict[tuple[int, str], RatioTotals] = defaultdict(RatioTotals)
    for item in items:
        if item["sk"].startswith("ratio#"):
            key = (int(item["variant_id"]), str(item["ratio"]))
            totals[key] = totals[key] + RatioTotals(
                units=int(item.get("units", 0)),
                cross=item.get("cross", Decimal(0)),
                cov_units=int(item.get("cov_units", 0)),
                cov_sum=item.get("cov_sum", Decimal(0)),
                cov_sum_sq=item.get("cov_sum_sq", Decimal(0)),
            )
    return totals


def summed_totals(items: list[dict[str, Any]]) -> dict[tuple[int, str], MetricTotals]:
    """Running totals per (variant id, metric), shards added up (other items ignored)."""
    totals: dict[tuple[int, str], MetricTotals] = defaultdict(MetricTotals)
    for item in items:
        if item["sk"].startswith("totals#"):
            key = (int(item["variant_id"]), str(item["metric"]))
            totals[key] = totals[key] + totals_from_item(item)
    return totals


def summed_exposures(items: list[dict[str, Any]]) -> dict[int, int]:
    """Units assigned per variant id, shards added up (other items ignored)."""
    exposures: dict[int, int] = defaultdict(int)
    for item in items:
        if item["sk"].startswith("exposure#"):
            exposures[int(item["variant_id"])] += int(item.get("units_assigned", 0))
    return exposures
