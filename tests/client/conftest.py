"""What the client tests that run real servers (gunicorn, uWSGI, Celery, aiohttp) share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.client.fake_service import FakeHttpService, FakeService


@pytest.fixture
def service() -> Iterator[FakeHttpService]:
    """The fake data plane over real HTTP, for clients in other processes."""
    served = FakeHttpService(FakeService())
    yield served
    served.close()
