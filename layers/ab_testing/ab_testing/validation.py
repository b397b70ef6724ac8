"""Pydantic validation errors as one InvalidInput that names the field."""

from __future__ import annotations

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
        problems = [_problem(error) for error in exc.errors(include_url=False)]
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


def _problem(error: Any) -> dict[str, str]:
    location = ".".join(str(part) for part in error.get("loc", ()))
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        message = "unknown field"
    return {"field": location, "message": message}
