"""A tick keeps the collector off the long-lived heap while it runs, and only while it runs."""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from typing import Any

from campaigns.importing import import_events
from channels.memory import InMemoryChannel
from tests.conftest import Harness, item, purchase, utc


class WatchingChannel(InMemoryChannel):
    """Notes, at every send, how many objects the collector has been told to leave alone."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.frozen: list[int] = []

    def send(self, message: Any) -> Any:
        self.frozen.append(gc.get_freeze_count())
        return super().send(message)


def test_sends_happen_with_the_heap_frozen_and_it_is_released_after(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness()
    h.project.channel_overrides["email"] = email = WatchingChannel("email")
    h.customers([{"id": "c1", "email": "kim@example.com", "timezone": "Europe/Berlin"}])
    h.events([purchase("e1", "c1", "2026-03-02T09:00:00+00:00", "o1", item())])
    gc.unfreeze()

    h.simulate(utc("2026-03-04T00:00:00+00:00"), start=utc("2026-03-02T08:00:00+00:00"))

    assert email.frozen, "the thank-you e-mail was sent"
    assert all(count > 0 for count in email.frozen)
    assert gc.get_freeze_count() == 0


def test_an_import_runs_with_the_heap_frozen_and_releases_it(
    make_harness: Callable[..., Harness],
) -> None:
    """Importing events is the same shape as a tick (batches of rows that go at once)."""
    h = make_harness()
    h.customers([{"id": "c1", "email": "kim@example.com", "timezone": "Europe/Berlin"}])
    path = h.directory / "events.jsonl"
    path.write_text(
        "\n".join(
            json.dumps(purchase(f"e{n}", "c1", "2026-03-02T09:00:00+00:00", f"o{n}", item()))
            for n in range(3)
        ),
        encoding="utf-8",
    )
    gc.unfreeze()
    frozen: list[int] = []

    report = import_events(
        h.project.db, path, progress=lambda _: frozen.append(gc.get_freeze_count())
    )

    assert report.imported == 3
    assert frozen and all(count > 0 for count in frozen)
    assert gc.get_freeze_count() == 0
