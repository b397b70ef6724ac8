"""GET /api/v1/experiments/{id}/insights?limit=&cursor= — analyses over time, newest first."""

from ab_testing.http import ApiRequest, api
from ab_testing.queries import InsightsQuery
from ab_testing.runtime import analysis


@api
def handler(request: ApiRequest) -> dict:
    experiment_id = request.path_id()
    query = request.params(InsightsQuery)
    return analysis().insights(experiment_id, limit=str(query.limit), cursor=query.cursor)
