"""Domain errors. They become HTTP answers in one place: ab_testing.http."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        body.update(self.details)
        return body


class InvalidInput(DomainError):
    status = 400
    code = "validation_error"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class IdempotencyKeyReused(Conflict):
    """The key was used before, for this unit and metric, with another value."""

    code = "idempotency_key_reused"


class StoreUnavailable(DomainError):
    """DynamoDB kept refusing (throttling, contention) after retries."""

    status = 503
    code = "unavailable"
