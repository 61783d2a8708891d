"""An independent audit of an exported send log against the customers, events and policy.

Written apart from ``campaigns.policy`` on purpose: it recomputes every rule from the raw
inputs, so a bug in the policy cannot hide itself here.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import phonenumbers

REACHED = {"sent", "delivered", "bounced", "unknown"}
MIN_GAP = timedelta(hours=24)  # every built-in journey's min_gap
# A step timed from the previous one: (journey, step) → (the previous step, the wait).
FROM_PREVIOUS = {("inspection_invitation", "reminder"): ("invite", timedelta(days=3))}
WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _span(text: str) -> timedelta:
    unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[text[-1]]
    return timedelta(**{unit: int(text[:-1])})


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(
        year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1])
    )


def _calendar(region: str | None) -> Any:
    if not region:
        return {}
    country, _, subdiv = region.upper().partition("-")
    try:
        return holidays.country_holidays(country, subdiv=subdiv or None)
    except NotImplementedError:
        return None


def _own_calendar(customer: dict[str, Any], policy: dict[str, Any]) -> Any:
    """The holidays a customer keeps: the project's region, or under "auto" the customer's
    country, else the phone number's country, else the default region."""
    region = policy.get("public_holidays")
    if region != "auto":
        return _calendar(region)
    for own in (customer.get("country"), _phone_country(customer.get("phone"))):
        found = _calendar(own) if own else None
        if found is None and own and "-" in own:
            found = _calendar(own.split("-")[0])
        if found is not None:
            return found
    return _calendar(policy.get("default_region"))


def _phone_country(phone: str | None) -> str | None:
    if not phone:
        return None
    return phonenumbers.region_code_for_number(phonenumbers.parse(phone, None))


def audit(
    records: list[dict[str, Any]],
    customers: dict[str, dict[str, Any]],
    events: list[dict[str, Any]],
    policy: dict[str, Any],
    min_gap: dict[str, timedelta] | None = None,
    *,
    bundle_within: timedelta = timedelta(hours=24),
) -> list[str]:
    """Every violation found; an empty list means the log is clean.

    ``min_gap`` by journey, where it is not the default 24 hours; ``bundle_within`` is the
    journeys' bundling window (the built-ins keep the default).
    """
    problems: list[str] = []
    reached = [r for r in records if r["status"] in REACHED]
    default_zone = policy.get("default_timezone", "Europe/Berlin")
    start, end = (time.fromisoformat(p) for p in policy["quiet_hours"].split("-"))
    quiet_days = {WEEKDAYS[d] for d in policy.get("quiet_days", [])}
    transactional = policy.get("transactional_quiet", "hours")
    calendars = {cid: _own_calendar(c, policy) for cid, c in customers.items()}

    for r in reached:
        # Marketing keeps every quiet rule; transactional mail what its mode names.
        mode = "all" if r["category"] == "marketing" else transactional
        if mode == "none":
            continue
        zone = ZoneInfo(customers[r["customer"]].get("timezone") or default_zone)
        local = _t(r["sent_at"]).astimezone(zone)
        clock = local.time()
        in_hours = (start <= clock or clock < end) if start > end else (start <= clock < end)
        if in_hours:
            problems.append(f"quiet: message {r['message_id']} at {local.isoformat()}")
        if mode == "all" and local.weekday() in quiet_days:
            problems.append(f"quiet day: message {r['message_id']} at {local.isoformat()}")
        own = calendars[r["customer"]]  # an empty calendar is falsy until it is asked
        if mode == "all" and own is not None and local.date() in own:
            problems.append(
                f"holiday: message {r['message_id']} to {r['customer']} at {local.isoformat()}"
            )

    marketing = [r for r in reached if r["category"] == "marketing"]
    by_customer: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in marketing:
        by_customer[r["customer"]].append(r)
    for cap in policy.get("caps", []):
        per = _span(cap["per"])
        for cid, sent in by_customer.items():
            times = sorted(
                _t(r["sent_at"]) for r in sent if cap["channel"] in ("any", r["channel"])
            )
            for i, moment in enumerate(times):
                window = [t for t in times[: i + 1] if t > moment - per]
                if len(window) > cap["max"]:
                    problems.append(f"cap {cap}: customer {cid} at {moment.isoformat()}")

    # Two marketing messages of one journey to one customer, closer than its min_gap. What
    # was skipped (bundled into another one, too) never reached anyone and is not here.
    by_journey: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for r in marketing:
        by_journey[(r["customer"], r["journey"])].append(_t(r["sent_at"]))
    for (cid, journey), times in by_journey.items():
        gap = (min_gap or {}).get(journey, MIN_GAP)
        times.sort()
        for earlier, later in zip(times, times[1:], strict=False):
            if later - earlier < gap:
                problems.append(
                    f"min_gap: journey {journey} to {cid} at {earlier.isoformat()} and "
                    f"{later.isoformat()}"
                )

    # A step timed from the previous one went out at least its wait after the previous
    # step's message did. Without the item in the record, the messages of one order's
    # items pair off in time order: the k-th reminder after the k-th invitation.
    # A message bundled into another went out when its carrier did.
    carriers = {r["message_id"]: r for r in reached}
    bundled = [
        {**r, "sent_at": carriers[r["bundled_into"]]["sent_at"]}
        for r in records
        if r.get("reason") == "bundled" and r.get("bundled_into") in carriers
    ]
    previous: dict[tuple, list[datetime]] = defaultdict(list)
    following: dict[tuple, list[datetime]] = defaultdict(list)
    for r, went_itself in [*((r, True) for r in reached), *((r, False) for r in bundled)]:
        key = (r["customer"], r["order"], r.get("item"), r["journey"], r["occurrence"])
        for (journey, step), (before, _) in FROM_PREVIOUS.items():
            if r["journey"] == journey and r["step"] == step and went_itself:
                following[(*key, step)].append(_t(r["sent_at"]))
            elif r["journey"] == journey and r["step"] == before:
                previous[(*key, step)].append(_t(r["sent_at"]))
    for key, times in following.items():
        _, wait = FROM_PREVIOUS[(key[3], key[5])]
        went = sorted(previous.get(key, []))
        for k, moment in enumerate(sorted(times)):
            if k >= len(went):
                problems.append(f"from_previous: {key} at {moment.isoformat()} without its own")
            elif moment - went[k] < wait:
                problems.append(
                    f"from_previous: {key} at {moment.isoformat()}, {wait} after "
                    f"{went[k].isoformat()} at the earliest"
                )

    consent_changes: dict[tuple[str, str], list[tuple[datetime, bool]]] = defaultdict(list)
    complaints: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    warranty: dict[str, datetime] = {}
    for e in events:
        at = _t(e["at"])
        if e["type"] in ("unsubscribed", "subscribed"):
            consent_changes[(e["customer"], e["channel"])].append((at, e["type"] == "subscribed"))
        elif e["type"] == "complaint_opened":
            complaints[e["customer"]].append((at, +1))
        elif e["type"] == "complaint_resolved":
            complaints[e["customer"]].append((at, -1))
        elif e["type"] == "purchase":
            months = [
                i.get("warranty_months") for i in e["order"]["items"] if i.get("warranty_months")
            ]
            if months:
                # The export names the order, not the item: the latest end in the order bounds
                # it. A warranty ends by the customer's calendar.
                zone = ZoneInfo(customers[e["customer"]].get("timezone") or default_zone)
                ends = _add_months(at.astimezone(zone), max(months))
                warranty[e["order"]["id"]] = ends.astimezone(UTC)

    for r in marketing:
        sent_at = _t(r["sent_at"])
        cid, channel = r["customer"], r["channel"]
        consent = customers[cid][f"{channel}_consent"] == "yes"
        for at, value in sorted(consent_changes[(cid, channel)]):
            if at <= sent_at:
                consent = value
        if not consent:
            problems.append(f"consent: message {r['message_id']} to {cid} over {channel}")
        open_count = sum(delta for at, delta in sorted(complaints[cid]) if at <= sent_at)
        if open_count > 0:
            problems.append(
                f"complaint: message {r['message_id']} to {cid} while a complaint is open"
            )
        ended = warranty.get(r["order"])
        if r["journey"] == "extended_warranty" and ended and sent_at >= ended:
            problems.append(f"warranty: message {r['message_id']} after the warranty ended")

    seen: dict[tuple, int] = defaultdict(int)
    for r in reached:
        seen[
            (r["customer"], r["order"], r["journey"], r["step"], r["occurrence"], r["template"])
        ] += 1
    items_per_order = {
        e["order"]["id"]: max(1, len(e["order"]["items"]))
        for e in events
        if e["type"] == "purchase"
    }
    for key, count in seen.items():
        if count > items_per_order.get(key[1], 1):
            problems.append(f"duplicate: {key} sent {count} times")
    ids = [r["message_id"] for r in records]
    if len(ids) != len(set(ids)):
        problems.append("duplicate message ids in the export")
    problems += _bundles(records, bundle_within)
    return problems


def _bundles(records: list[dict[str, Any]], window: timedelta) -> list[str]:
    """Per-item messages of one customer, journey and step due within ``window`` of each
    other went out as one: no two of them reached the customer that close together, and
    each ``bundled`` one names a carrier of its kind that reached the customer."""
    problems: list[str] = []
    by_id = {r["message_id"]: r for r in records}
    for r in records:
        if (r.get("reason") == "bundled") != (r.get("bundled_into") is not None):
            problems.append(f"bundle: message {r['message_id']} has reason {r.get('reason')!r} "
                            f"and bundled_into {r.get('bundled_into')!r}")  # fmt: skip
            continue
        if r.get("reason") != "bundled":
            continue
        carrier = by_id.get(r["bundled_into"])
        same = ("customer", "journey", "step", "channel")
        if (
            r["status"] != "skipped"
            or carrier is None
            or carrier["status"] not in REACHED
            or carrier.get("bundled_into") is not None
            or any(carrier[k] != r[k] for k in same)
            or carrier["item"] is None
            or abs(_t(carrier["due_at"]) - _t(r["due_at"])) > window
        ):
            problems.append(f"bundle: message {r['message_id']} bundled into {carrier}")
    sent: dict[tuple, list[datetime]] = defaultdict(list)
    for r in records:
        if r.get("item") is not None and r["status"] in REACHED:
            sent[(r["customer"], r["journey"], r["step"])].append(_t(r["sent_at"]))
    for key, times in sent.items():
        times.sort()
        for a, b in zip(times, times[1:], strict=False):
            if b - a <= window:
                problems.append(f"twins: {key} at {a.isoformat()} and {b.isoformat()}")
    return problems
