"""Pydantic validation errors as one InvalidInput that names the field."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ab_testing.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object", field="body")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = _relevant([_problem(error) for error in exc.errors(include_url=False)])
        first = problems[0]
        raise InvalidInput(
            f"{first['field']}: {first['message']}" if first["field"] else first["message"],
            field=first["field"] or "body",
            errors=problems,
        ) from None


def parse_query(model: type[M], query: dict[str, str]) -> M:
    """Query parameters by ``model``: an unknown one is refused by name, as a typo should be."""
    unknown = sorted(set(query) - set(model.model_fields))
    if unknown:
        known = ", ".join(model.model_fields) or "none"
        raise InvalidInput(
            f"unknown query parameter(s): {', '.join(unknown)}; this route takes: {known}",
            field=unknown[0],
            unknown_parameters=unknown,
        )
    return parse(model, dict(query))


# Pydantic names the branch of a union in the location ("user_id.constrained-int"): not a field.
_UNION_BRANCH = re.compile(r"^(constrained-\w+|function-(after|before|wrap|plain)\[.*\])$")
# Errors that only say "this branch of a union wants another type".
_WRONG_TYPE = {"int_parsing", "int_type", "string_type", "float_parsing", "float_type"}


def _problem(error: Any) -> dict[str, str]:
    parts = [str(p) for p in error.get("loc", ()) if not _UNION_BRANCH.match(str(p))]
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        message = "unknown field"
    return {"field": ".".join(parts), "message": message, "type": str(error.get("type"))}


def _relevant(problems: list[dict[str, str]]) -> list[dict[str, str]]:
    """One field refused by every branch of a union (a string user_id too long is also "not
    an integer"): keep the branches that say what is wrong with the value as sent."""
    said = {p["field"] for p in problems if p["type"] not in _WRONG_TYPE}
    kept = [p for p in problems if p["type"] not in _WRONG_TYPE or p["field"] not in said]
    return [{"field": p["field"], "message": p["message"]} for p in kept]
