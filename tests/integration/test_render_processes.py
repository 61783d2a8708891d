"""Rendering in render processes: the same messages as in-process, failures kept to one message.

Each dispatch here has one batch big enough for the render pool, so its processes really
start (``spawn``) and render; the dying renderer below is built in those processes from a
picklable factory, as the project's own renderer is.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import scheduler.dispatcher
from channels import OutgoingMessage
from scheduler.clock import SimulatedClock
from scheduler.rendering import RenderPool
from templates import RenderedEmail, TemplateRenderer
from tests.conftest import Harness, purchase

CUSTOMERS = 120
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
TOML = """
secret_key = "test-secret-key"
public_url = "https://shop.example/after"
[dispatch]
render_processes = {processes}
batch_size = {batch_size}
[policy]
default_timezone = "Europe/Berlin"
quiet_hours = ""
public_holidays = ""
caps = []
"""
# An e-mail and an SMS for every purchase, all due in the same instant: one batch.
JOURNEYS = {
    "mail.yaml": """
id: mail
name: Offer by e-mail
trigger: {event: purchase}
steps:
  - id: offer
    wait: 1h
    send: {channel: email, template: loyalty_offer, category: marketing}
""",
    "text.yaml": """
id: text
name: Reminder by SMS
trigger: {event: purchase}
steps:
  - id: reminder
    wait: 1h
    send: {channel: sms, template: warranty_reminder, category: marketing}
""",
}
FRAGILE_JOURNEY = """
id: fragile
name: A template that fails for one customer
trigger: {event: purchase}
steps:
  - id: hello
    wait: 1h
    send: {channel: email, template: fragile, category: transactional}
"""
FRAGILE_TEMPLATE = """{% extends "_layout.email.html.j2" %}
{% block subject %}Hallo {{ customer.first_name }}{% endblock %}
{% block content %}<p>Hallo {{ customer.first_name }}
{% if customer.first_name == "Broken" %}{{ order.no_such_field }}{% endif %}</p>
{% endblock %}
"""


@pytest.fixture
def shop(make_harness: Callable[..., Harness]) -> Iterator[Callable[..., Harness]]:
    """Makes shops with purchases due for dispatch; closes their projects afterwards."""
    made: list[Harness] = []

    def make(**kwargs: Any) -> Harness:
        made.append(_shop(make_harness, **kwargs))
        return made[-1]

    yield make
    for h in made:
        h.project.close()


def _shop(
    make_harness: Callable[..., Harness],
    *,
    processes: int,
    database_url: str | None = None,
    journeys: dict[str, str] = JOURNEYS,
    batch_size: int = 500,
    customers: int = CUSTOMERS,
    names: Callable[[int], str] = lambda n: "Kim",
) -> Harness:
    h = make_harness(
        database_url=database_url,
        toml=TOML.format(processes=processes, batch_size=batch_size),
        journeys=journeys,
        builtin_journeys=False,
    )
    h.customers(
        [
            {
                "id": f"c{n}",
                "email": f"c{n}@example.com",
                "phone": f"+4915112{n:06d}",
                "first_name": names(n),
                "locale": "de" if n % 3 else "en",
                "sms_consent": "yes",
            }
            for n in range(customers)
        ]
    )
    item = {"sku": "WM-1", "name": "Waschmaschine", "price": "499.00", "quantity": 1,
            "warranty_months": 24}  # fmt: skip
    at = START.isoformat()
    h.events([purchase(f"e{n}", f"c{n}", at, f"o{n}", item) for n in range(customers)])
    return h


def _dispatch(h: Harness, pool: RenderPool | None = None) -> Any:
    """Apply the purchases, then dispatch everything due an hour later in one tick."""
    clock = SimulatedClock(START)
    dispatcher = h.project.dispatcher(clock)
    if pool is not None:
        dispatcher.render_pool = pool
    try:
        dispatcher.tick()
        clock.advance_to(START + timedelta(hours=1, minutes=1))
        return dispatcher.tick()
    finally:
        dispatcher.close()


def _content(message: OutgoingMessage) -> tuple[Any, ...]:
    return (message.to, message.kind, message.subject, message.body_html, message.body_text,
            sorted(message.headers.items()), message.category, message.journey, message.step)  # fmt: skip


def _refuse_in_process(*_args: Any) -> None:
    raise AssertionError("rendered in the dispatcher's process, not in a render process")


def test_render_processes_send_what_in_process_rendering_sends(
    shop: Callable[..., Harness], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = shop(processes=0)
    expected = _dispatch(reference)
    pooled = shop(processes=2, database_url=database_url)
    monkeypatch.setattr(scheduler.dispatcher, "render", _refuse_in_process)
    stats = _dispatch(pooled)
    assert stats.sent == expected.sent == 2 * CUSTOMERS
    for kind in ("email", "sms"):
        ours = sorted(_content(m) for m in getattr(pooled, kind).sent)
        theirs = sorted(_content(m) for m in getattr(reference, kind).sent)
        assert ours == theirs
    rows = {(m.customer_id, m.channel): (m.locale, m.details) for m in pooled.messages()}
    assert rows == {(m.customer_id, m.channel): (m.locale, m.details) for m in reference.messages()}


@pytest.mark.parametrize("processes", [0, 2])
def test_a_template_that_fails_fails_only_its_message(
    shop: Callable[..., Harness], database_url: str, processes: int
) -> None:
    h = shop(
        processes=processes,
        database_url=database_url,
        journeys={"fragile.yaml": FRAGILE_JOURNEY},
        names=lambda n: "Broken" if n == 7 else "Kim",
    )
    (h.directory / "templates" / "fragile.email.de.html.j2").write_text(FRAGILE_TEMPLATE)
    (h.directory / "templates" / "fragile.email.en.html.j2").write_text(FRAGILE_TEMPLATE)
    stats = _dispatch(h)
    assert (stats.sent, stats.failed) == (CUSTOMERS - 1, 1)
    failed = h.messages(status="failed")
    assert [(m.customer_id, m.reason) for m in failed] == [("c7", "render_error")]
    assert len(h.email.sent) == CUSTOMERS - 1


class DyingRenderer(TemplateRenderer):
    """Registers the process it renders in; the first e-mail while ``flag`` exists kills it."""

    def __init__(self, *, flag: str, processes: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.flag = flag
        Path(processes, str(os.getpid())).touch()

    def render_email(self, *args: Any, **kwargs: Any) -> RenderedEmail:
        try:
            os.unlink(self.flag)  # only one process ever succeeds
        except FileNotFoundError:
            return super().render_email(*args, **kwargs)
        os._exit(1)


def test_a_killed_render_process_loses_and_doubles_nothing(
    shop: Callable[..., Harness], database_url: str, tmp_path: Path
) -> None:
    customers = 300
    h = shop(
        processes=0,
        database_url=database_url,
        journeys={"mail.yaml": JOURNEYS["mail.yaml"]},
        batch_size=50,
        customers=customers,
    )
    flag, processes = tmp_path / "die", tmp_path / "processes"
    flag.touch()
    processes.mkdir()
    factory = partial(DyingRenderer, flag=str(flag), processes=str(processes))
    stats = _dispatch(h, RenderPool(factory, processes=1, min_batch=1, chunk_size=10))
    assert not flag.exists()  # a render process did die
    assert len(list(processes.iterdir())) >= 2  # and a new one took over
    sent = Counter(m.message_id for m in h.email.sent)
    assert len(sent) == stats.sent == customers
    assert set(sent.values()) == {1}
    assert {m.status for m in h.messages()} == {"sent"}
