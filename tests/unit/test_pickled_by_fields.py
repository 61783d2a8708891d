"""Objects that cross to render processes pickle as constructor calls and come back equal."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from datetime import UTC, datetime

from campaigns.engine import CustomerRow
from channels import OutgoingMessage, SendResult, pickled_by_fields
from scheduler.parts import ContextParts, Item, LinkSettings, Order
from scheduler.rendering import Rendered, RenderFailure, RenderJob


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class _One:
    only: list[int] = field(default_factory=list)


def _round_trip(value: object) -> object:
    return pickle.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


def test_every_field_comes_back() -> None:
    now = datetime(2026, 3, 2, 9, tzinfo=UTC)
    customer = CustomerRow("c1", "kim@example.com", None, "Kim", "Test", "de", "Europe/Berlin",
                        True, False, 0, {"city": "Köln"})  # fmt: skip
    parts = ContextParts(
        id=7, customer_id="c1", enrollment_id="thank_you:c1:o1", channel="email",
        journey_id="thank_you", step="thanks", occurrence=1, now=now, customer=customer,
        order=Order("o1", "499.00", "EUR", now),
        items=(Item("o1", 0, "WM-1", "Waschmaschine", "appliance", "499.00", 1, 24, 90),),
        position=0,
    )  # fmt: skip
    job = RenderJob(
        message_id=7, channel="email", template="thank_you", category="transactional",
        locale="de", customer_id="c1", journey="thank_you", step="thanks", parts=parts,
        links=LinkSettings("https://shop.example", "secret", short_links=False),
    )  # fmt: skip
    outgoing = OutgoingMessage(message_id="7", kind="email", to="kim@example.com",
                               body_text="Hallo", subject="Danke", body_html="<p>Hallo</p>",
                               headers={"X-A": "1"}, customer_id="c1")  # fmt: skip
    values = [
        job,
        Rendered(outgoing, "de", {"html_bytes": 12}),
        RenderFailure("boom", "thank_you", "x.j2", 3, None),
        SendResult("memory", "m-1", {"a": [1]}),
        _One([1, 2]),
    ]
    for value in values:
        copy = _round_trip(value)
        assert copy == value and type(copy) is type(value)
    assert _round_trip(job).template_context() == job.template_context()


def test_a_constructor_call_is_what_gets_pickled() -> None:
    result = SendResult("memory", "m-1")
    assert result.__reduce__() == (SendResult, ("memory", "m-1", {}))
    assert _One([3]).__reduce__() == (_One, ([3],))
