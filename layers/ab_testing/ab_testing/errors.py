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
    retry_after_seconds = 1  # answered as the Retry-After header


# DynamoDB refusals that a later attempt can get past (after botocore's own retries).
RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "TransactionConflictException",
        "TransactionInProgressException",
        "InternalServerError",
        "ServiceUnavailable",
        "ThrottlingError",  # a cancellation reason of TransactWriteItems
        "TransactionConflict",
    }
)

# Of those, the ones that say DynamoDB itself failed on the call rather than that it is busy.
FAILED_CODES = frozenset({"InternalServerError", "ServiceUnavailable"})

# botocore's transport errors once its retries are spent (named, to keep botocore out of here).
TRANSPORT_ERRORS = frozenset(
    {"ReadTimeoutError", "ConnectTimeoutError", "EndpointConnectionError", "ConnectionClosedError"}
)


def as_unavailable(exc: Exception) -> StoreUnavailable | None:
    """A throttling, contention or transport error from DynamoDB as a StoreUnavailable."""
    if type(exc).__name__ in TRANSPORT_ERRORS:
        return StoreUnavailable("DynamoDB did not answer in time, please retry")
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = str((response.get("Error") or {}).get("Code", ""))
    reasons = {str(r.get("Code")) for r in response.get("CancellationReasons") or []}
    if code in FAILED_CODES:
        return StoreUnavailable(f"DynamoDB failed on this call ({code}), please retry")
    if code in RETRYABLE_CODES or reasons & RETRYABLE_CODES:
        return StoreUnavailable("DynamoDB is busy (throttled or contended), please retry")
    return None
