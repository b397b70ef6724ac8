"""POST /api/v1/experiments/{id}/stop?declare_winner=true&promote=true — stop, with a winner."""

from ab_testing.http import ApiRequest, api
from ab_testing.runtime import analysis


@api
def handler(request: ApiRequest) -> dict:
    return analysis().stop(
        request.path_id(),
        declare_winner=request.flag("declare_winner"),
        promote=request.flag("promote"),
    )
