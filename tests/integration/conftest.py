"""Fixtures shared by the web app's tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.conftest import Harness
from tests.integration.test_webhooks import WEB_TOML, Web


@pytest.fixture
def web(make_harness: Callable[..., Harness]) -> Iterator[Web]:
    """A project with every webhook secret set, and its web app under a test client."""
    h = make_harness(toml=WEB_TOML)
    yield Web(h)
    h.project.close()
