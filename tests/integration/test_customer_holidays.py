"""Each customer's own holidays, and transactional mail under quiet days, on the simulated
clock, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from campaigns.models import MessageDecision
from tests.conftest import Harness, item, purchase, utc

OFFER = {
    "offer.yaml": """
id: offer
name: Offer
trigger:
  event: purchase
steps:
  - id: offer
    wait: 1m
    send:
      channel: email
      template: loyalty_offer
      category: marketing
      expires_after: 30d
"""
}


def toml(**policy: str) -> str:
    lines = [
        'secret_key = "test-secret-key"',
        'public_url = "https://shop.example/after"',
        "[policy]",
        'default_timezone = "Europe/Berlin"',
        'quiet_hours = "20:00-09:00"',
    ]
    lines += [f'{key} = "{value}"' for key, value in policy.items()]
    return "\n".join(lines) + "\n"


NEW_YORKER = {"id": "ny", "email": "ny@example.com", "timezone": "America/New_York",
              "country": "US", "locale": "en"}  # fmt: skip
BERLINER = {"id": "be", "email": "be@example.com", "timezone": "Europe/Berlin", "country": "DE"}
# Only a phone number says where this customer lives.
CALLER = {"id": "ph", "email": "ph@example.com", "phone": "+12125550123",
          "timezone": "America/New_York", "locale": "en"}  # fmt: skip


@pytest.fixture
def shop(
    make_harness: Callable[..., Harness], database_url: str
) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def build(journeys: dict[str, str] | None = None, **policy: str) -> Harness:
        h = make_harness(
            database_url=database_url,
            toml=toml(**policy),
            journeys=journeys,
            builtin_journeys=journeys is None,
        )
        made.append(h)
        return h

    yield build
    for h in made:
        h.project.close()


def offer_of(h: Harness, customer: str, order: str):
    [m] = h.messages(customer_id=customer, order_id=order)
    return m


def test_each_customer_is_held_on_the_holidays_of_their_own_region(shop) -> None:
    h = shop(OFFER, public_holidays="auto", default_region="DE")
    assert h.customers([NEW_YORKER, BERLINER, CALLER]).ok
    h.events(
        [
            # German Unity Day (a Saturday in 2026) and Thanksgiving, 10:00 local time.
            purchase("e1", "ny", "2026-10-03T10:00:00-04:00", "ny-unity", item()),
            purchase("e2", "ny", "2026-11-26T10:00:00-05:00", "ny-thanks", item()),
            purchase("e3", "be", "2026-10-03T10:00:00+02:00", "be-unity", item()),
            purchase("e4", "be", "2026-11-26T10:00:00+01:00", "be-thanks", item()),
            purchase("e5", "ph", "2026-11-26T10:00:00-05:00", "ph-thanks", item()),
        ]
    )
    h.simulate(utc("2026-12-01T00:00:00"), start=utc("2026-10-01T00:00:00"))

    assert offer_of(h, "ny", "ny-unity").sent_at == utc("2026-10-03T14:01:00")
    held = offer_of(h, "ny", "ny-thanks")
    assert held.sent_at == utc("2026-11-27T14:00:00")  # Friday 09:00 in New York
    assert offer_of(h, "be", "be-unity").sent_at == utc("2026-10-04T07:00:00")  # Sunday 09:00
    assert offer_of(h, "be", "be-thanks").sent_at == utc("2026-11-26T09:01:00")
    # The phone number's country decides for a customer without one.
    assert offer_of(h, "ph", "ph-thanks").sent_at == utc("2026-11-27T14:00:00")
    reasons = {d.reason for d in _decisions(h, held.id) if d.action == "deferred"}
    assert reasons == {"public_holiday"}


def test_a_fixed_region_holds_everyone_on_its_holidays(shop) -> None:
    h = shop(OFFER, public_holidays="DE")
    assert h.customers([NEW_YORKER]).ok
    h.events(
        [
            purchase("e1", "ny", "2026-10-03T10:00:00-04:00", "ny-unity", item()),
            purchase("e2", "ny", "2026-11-26T10:00:00-05:00", "ny-thanks", item()),
        ]
    )
    h.simulate(utc("2026-12-01T00:00:00"), start=utc("2026-10-01T00:00:00"))
    assert offer_of(h, "ny", "ny-unity").sent_at == utc("2026-10-04T13:00:00")
    assert offer_of(h, "ny", "ny-thanks").sent_at == utc("2026-11-26T15:01:00")


SATURDAY_EVENING = "2026-03-14T19:30:00+01:00"


@pytest.mark.parametrize(
    ("mode", "sent"),
    [
        ("hours", "2026-03-15T08:00:00"),  # Sunday 09:00 in Berlin, not Monday
        ("all", "2026-03-16T08:00:00"),  # Monday 09:00
        ("none", "2026-03-14T20:30:00"),  # two hours on, at once, however late
    ],
)
def test_a_saturday_evening_thank_you_under_each_transactional_mode(
    shop, mode: str, sent: str
) -> None:
    h = shop(quiet_days="sun", public_holidays="DE", transactional_quiet=mode)
    assert h.customers([BERLINER]).ok
    h.events([purchase("e1", "be", SATURDAY_EVENING, "o1", item())])
    h.simulate(utc("2026-03-17T00:00:00"), start=utc("2026-03-14T00:00:00"))
    [thanks] = h.messages(journey_id="thank_you")
    assert thanks.status == "sent"
    assert thanks.sent_at == utc(sent)


def _decisions(h: Harness, message_id: int) -> list:
    t = MessageDecision.__table__
    with h.project.db.connect() as conn:
        return list(conn.execute(sa.select(t).where(t.c.message_id == message_id)))
