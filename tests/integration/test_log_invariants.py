"""For random customer bases and policies, the exported send log breaks no rule."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from aftersale.sendlog import LogFilter, write_export
from tests.conftest import CUSTOMER_HEADER
from tests.invariants import audit

ZONES = ["Europe/Berlin", "Europe/London", "America/New_York", "Asia/Tokyo", "Australia/Sydney"]
START = datetime(2026, 1, 1, tzinfo=UTC)


@st.composite
def policies(draw):
    quiet = draw(st.sampled_from(["20:00-09:00", "22:00-08:00", "12:00-14:00", "18:00-10:00"]))
    caps = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "channel": st.sampled_from(["email", "sms", "any"]),
                    "max": st.integers(1, 3),
                    "per": st.sampled_from(["12h", "2d", "7d", "14d"]),
                }
            ),
            min_size=1,
            max_size=3,
        )
    )
    return {
        "default_timezone": draw(st.sampled_from(ZONES)),
        "quiet_hours": quiet,
        "quiet_days": draw(st.sampled_from([[], ["sun"], ["sat", "sun"]])),
        "public_holidays": draw(st.sampled_from([None, "DE", "DE-BY", "auto", "auto"])),
        "default_region": draw(st.sampled_from(["DE", "US", "GB"])),
        "transactional_quiet": draw(st.sampled_from(["hours", "all", "none"])),
        "caps": caps,
    }


@st.composite
def shops(draw):
    n = draw(st.integers(1, 5))
    customers = {}
    events = []
    moments = st.integers(0, 300 * 24 * 60).map(lambda m: START + timedelta(minutes=m))
    for i in range(n):
        cid = f"c{i}"
        customers[cid] = {
            "id": cid,
            "email": f"{cid}@example.com",
            # The phone's country and the country column name the customer's own holidays.
            "phone": draw(st.sampled_from([f"+491511234{5600 + i}", f"+1212555{1200 + i}", ""])),
            "country": draw(st.sampled_from(["", "", "US", "DE", "DE-BY", "GB"])),
            "first_name": "Kim",
            "last_name": "Test",
            "locale": draw(st.sampled_from(["de", "en"])),
            "timezone": draw(st.sampled_from([*ZONES, ""])),
            "email_consent": draw(st.sampled_from(["yes", "no"])),
            "sms_consent": draw(st.sampled_from(["yes", "no"])),
        }
        for p in range(draw(st.integers(1, 3))):
            at = draw(moments)
            items = [
                {"sku": f"S{k}", "name": "Gerät", "category": "appliance", "price": "100.00",
                 "quantity": 1, "warranty_months": draw(st.sampled_from([None, 2, 3, 12])),
                 "inspection_interval_days": draw(st.sampled_from([None, 14, 30, 90]))}
                for k in range(draw(st.integers(1, 2)))
            ]  # fmt: skip
            order = f"o{i}-{p}"
            events.append({"type": "purchase", "customer": cid, "at": at,
                           "order": {"id": order, "total": "100.00", "currency": "EUR", "items": items}})  # fmt: skip
            if draw(st.booleans()):
                kind = draw(st.sampled_from(["return", "warranty_extended"]))
                events.append({"type": kind, "customer": cid, "order": order,
                               "at": at + timedelta(days=draw(st.integers(1, 80)))})  # fmt: skip
        if draw(st.booleans()):
            opened = draw(moments)
            events.append({"type": "complaint_opened", "customer": cid, "at": opened})
            if draw(st.booleans()):
                closed = opened + timedelta(hours=draw(st.integers(1, 2000)))
                events.append({"type": "complaint_resolved", "customer": cid, "at": closed})
        if draw(st.booleans()):
            events.append({"type": "unsubscribed", "customer": cid, "at": draw(moments),
                           "channel": draw(st.sampled_from(["email", "sms"]))})  # fmt: skip
    for number, event in enumerate(events):
        event["id"] = f"e{number}"
        event["at"] = event["at"].isoformat()
    return customers, events


def _toml(policy) -> str:
    lines = ['secret_key = "k"', "[policy]", f'default_timezone = "{policy["default_timezone"]}"',
             f'quiet_hours = "{policy["quiet_hours"]}"', f"quiet_days = {json.dumps(policy['quiet_days'])}"]  # fmt: skip
    if policy["public_holidays"]:
        lines.append(f'public_holidays = "{policy["public_holidays"]}"')
    lines.append(f'default_region = "{policy["default_region"]}"')
    lines.append(f'transactional_quiet = "{policy["transactional_quiet"]}"')
    for cap in policy["caps"]:
        lines += [
            "[[policy.caps]]",
            f'channel = "{cap["channel"]}"',
            f"max = {cap['max']}",
            f'per = "{cap["per"]}"',
        ]
    return "\n".join(lines) + "\n"


# Each example simulates a year and a half; shrinking such examples takes minutes, so a
# failure is reported as generated (with its seed) rather than shrunk.
@settings(
    max_examples=12,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(shop=shops(), policy=policies())
def test_simulated_log_breaks_no_rule(make_harness, shop, policy):
    customers, events = shop
    h = make_harness(toml=_toml(policy))
    try:
        rows = [
            {k: c[k] for k in [*CUSTOMER_HEADER.split(","), "country"]} for c in customers.values()
        ]
        assert h.customers(rows).ok
        assert h.events(events).ok
        h.simulate(datetime(2027, 6, 1, tzinfo=UTC))  # the whole first year of every journey
        out = io.StringIO()
        with h.project.db.connect() as conn:
            write_export(conn, LogFilter(), out, "jsonl")
        records = [json.loads(line) for line in out.getvalue().splitlines()]
        assert records, "every purchase plans at least a thank-you"
        end = datetime(2027, 6, 1, tzinfo=UTC)
        assert not [r for r in records if r["status"] == "sending"]
        assert not [
            r for r in records if r["status"] == "planned" and r["due_at"] <= end.isoformat()
        ]
        assert audit(records, customers, events, policy) == []
    finally:
        h.project.close()


def test_the_audit_itself_catches_violations():
    policy = {"default_timezone": "Europe/Berlin", "quiet_hours": "20:00-09:00",
              "caps": [{"channel": "email", "max": 1, "per": "7d"}]}  # fmt: skip
    customers = {"c1": {"timezone": "", "email_consent": "yes", "sms_consent": "no"}}
    base = {"customer": "c1", "order": None, "journey": "j", "step": "s", "occurrence": 1,
            "channel": "email", "category": "marketing", "template": "t", "status": "sent"}  # fmt: skip
    records = [
        {**base, "message_id": 1, "sent_at": "2026-03-02T22:00:00Z"},  # 23:00 in Berlin: quiet
        {
            **base,
            "message_id": 2,
            "sent_at": "2026-03-03T10:00:00Z",
            "step": "t",
        },  # second in 7 days
        {**base, "message_id": 3, "sent_at": "2026-03-20T10:00:00Z", "channel": "sms", "step": "u"},
        {**base, "message_id": 4, "sent_at": "2026-04-20T10:00:00Z", "step": "t"},  # sent twice
        # A reminder one day after its invitation, not three.
        {**base, "message_id": 5, "sent_at": "2026-05-04T10:00:00Z", "step": "invite",
         "journey": "inspection_invitation"},
        {**base, "message_id": 6, "sent_at": "2026-05-05T10:00:00Z", "step": "reminder",
         "journey": "inspection_invitation", "channel": "sms"},
        # Skipped (bundled into another one): it never went out, so it keeps no gap.
        {**base, "message_id": 7, "sent_at": None, "status": "skipped", "step": "v",
         "reason": "bundled"},
    ]  # fmt: skip
    problems = audit(records, customers, [], policy)
    assert [p.split(":")[0] for p in problems] == [
        "quiet",
        "cap {'channel'",
        "min_gap",  # messages 1 and 2 of journey j, twelve hours apart (5 and 6 keep 24)
        "from_previous",
        "consent",
        "consent",  # message 6 by SMS
        "duplicate",
        "bundle",  # message 7 names no carrier
    ]


def test_the_audit_catches_twins_and_bad_bundles():
    policy = {"default_timezone": "Europe/Berlin", "quiet_hours": "20:00-09:00"}
    customers = {"c1": {"timezone": "", "email_consent": "yes", "sms_consent": "no"}}
    base = {"customer": "c1", "order": "o1", "journey": "inspection_invitation",
            "step": "invite", "occurrence": 1, "channel": "email", "category": "marketing",
            "template": "t", "status": "sent", "reason": None, "bundled_into": None,
            "due_at": "2026-03-02T10:00:00Z", "sent_at": "2026-03-02T10:00:00Z"}  # fmt: skip
    carrier = {**base, "message_id": 1, "item": "GS-6"}
    bundled = {**base, "message_id": 2, "item": "WM-7", "status": "skipped",
               "reason": "bundled", "bundled_into": 1, "sent_at": None}  # fmt: skip
    bought = [{"type": "purchase", "customer": "c1", "at": "2026-01-01T10:00:00Z",
               "order": {"id": "o1", "items": [{"sku": "GS-6"}, {"sku": "WM-7"}]}}]  # fmt: skip
    assert audit([carrier, bundled], customers, bought, policy) == []

    twin = {**bundled, "status": "sent", "reason": None, "bundled_into": None,
            "sent_at": "2026-03-02T10:01:00Z"}  # fmt: skip
    unsent = {**carrier, "status": "skipped", "reason": "no_consent:email", "sent_at": None}
    elsewhere = {**bundled, "step": "reminder"}
    unexplained = {**bundled, "reason": "expired"}
    found = [
        audit(records, customers, bought, policy)
        for records in ([carrier, twin], [unsent, bundled], [carrier, elsewhere],
                        [carrier, unexplained])
    ]  # fmt: skip
    assert [[p.split(":")[0] for p in problems] for problems in found] == [
        ["min_gap", "twins"],  # a minute apart: also closer than the journey's min_gap
        ["bundle"],
        ["bundle"],
        ["bundle"],
    ]
    # Three days apart is no twin.
    later = {**twin, "sent_at": "2026-03-05T10:00:00Z", "due_at": "2026-03-05T10:00:00Z"}
    assert audit([carrier, later], customers, bought, policy) == []


def test_the_audit_holds_each_customer_to_the_holidays_of_their_own_region():
    policy = {"default_timezone": "Europe/Berlin", "quiet_hours": "20:00-09:00",
              "quiet_days": ["sun"], "public_holidays": "auto", "default_region": "DE",
              "transactional_quiet": "hours", "caps": []}  # fmt: skip
    customers = {
        "ny": {"timezone": "America/New_York", "country": "US", "email_consent": "yes"},
        "ph": {"timezone": "America/New_York", "phone": "+12125551200", "email_consent": "yes"},
        "be": {"timezone": "Europe/Berlin", "email_consent": "yes"},
    }
    base = {"order": None, "journey": "j", "occurrence": 1, "channel": "email",
            "category": "marketing", "template": "t", "status": "sent"}  # fmt: skip
    thanksgiving = "2026-11-26T15:00:00Z"  # 10:00 in New York
    records = [
        {**base, "message_id": 1, "customer": "ny", "step": "a", "sent_at": thanksgiving},
        {**base, "message_id": 2, "customer": "ny", "step": "b", "sent_at": "2026-10-03T14:00:00Z"},
        {**base, "message_id": 3, "customer": "ph", "step": "a", "sent_at": thanksgiving},
        {**base, "message_id": 4, "customer": "be", "step": "a", "sent_at": "2026-10-03T08:00:00Z"},
        {**base, "message_id": 5, "customer": "be", "step": "b", "sent_at": "2026-11-26T09:00:00Z"},
        # Transactional mail keeps quiet hours only: a Sunday morning is fine.
        {
            **base,
            "message_id": 6,
            "customer": "be",
            "step": "c",
            "category": "transactional",
            "sent_at": "2026-03-15T08:00:00Z",
        },  # fmt: skip
    ]
    problems = audit(records, customers, [], policy)
    assert [p.split(" at ")[0] for p in problems] == [
        "holiday: message 1 to ny",
        "holiday: message 3 to ph",
        "holiday: message 4 to be",
    ]
    strict = audit(records, customers, [], {**policy, "transactional_quiet": "all"})
    assert any(p.startswith("quiet day: message 6") for p in strict)
