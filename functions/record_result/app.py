"""POST /api/v1/experiments/record-result — record one result exactly once (hot path)."""

from ab_testing.http import ApiRequest, api
from ab_testing.runtime import service


@api
def handler(request: ApiRequest) -> tuple[int, dict]:
    answer = service().record(request.json())
    created = answer["recorded"] and not answer.get("duplicate")
    return (201 if created else 200), answer
