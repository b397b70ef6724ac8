"""POST /api/v1/experiments/{id}/stop?declare_winner=true&promote=true — stop, with a winner."""

from ab_testing.http import ApiRequest, api
from ab_testing.queries import StopQuery
from ab_testing.runtime import analysis


@api
def handler(request: ApiRequest) -> dict:
    experiment_id = request.path_id()
    query = request.params(StopQuery)
    return analysis().stop(
        experiment_id, declare_winner=query.declare_winner, promote=query.promote
    )
