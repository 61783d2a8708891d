"""The console's forecast page runs one forecast at a time: a second asked for while one
runs is answered at once, not queued behind it."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from aftersale.admin import forecast_page
from tests.conftest import Harness
from tests.integration.admin_data import ADMIN, VIEWER, client_for, login, seed

URL = "/admin/forecast?until=2026-06-30"


def test_a_second_forecast_meanwhile_is_refused_at_once(
    sqlite_harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(sqlite_harness)
    started, finish = threading.Event(), threading.Event()
    real = forecast_page.run_forecast

    def held(*args: Any, **kwargs: Any) -> Any:
        started.set()
        assert finish.wait(60), "the test never let the first forecast finish"
        return real(*args, **kwargs)

    monkeypatch.setattr(forecast_page, "run_forecast", held)
    first: dict[str, Any] = {}
    with client_for(sqlite_harness) as alice, client_for(sqlite_harness) as victor:
        login(alice, ADMIN)
        login(victor, VIEWER)
        running = threading.Thread(target=lambda: first.update(page=alice.get(URL)))
        running.start()
        try:
            assert started.wait(60)
            busy = victor.get(URL)
            assert busy.status_code == 429
            assert forecast_page.BUSY in busy.text
            assert 'id="chart-data"' not in busy.text and "<form" in busy.text
        finally:
            finish.set()
            running.join(60)
        assert first["page"].status_code == 200, first["page"].text[:500]
        assert forecast_page.BUSY not in first["page"].text
        again = victor.get(URL)  # the first has finished: the next one runs
        assert again.status_code == 200 and forecast_page.BUSY not in again.text
        assert 'id="chart-data"' in first["page"].text and 'id="chart-data"' in again.text
