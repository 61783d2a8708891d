"""The contact policy's holds after a low rating (``unsatisfied``) and for fatigue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aftersale.settings import load_settings
from campaigns.policy import (
    Allow,
    Candidate,
    ContactPolicy,
    Defer,
    Fatigue,
    PolicyRules,
    Recipient,
    Skip,
)

NOW = datetime(2026, 3, 4, 11, tzinfo=UTC)  # a Wednesday, 12:00 in Berlin
OPEN = PolicyRules(quiet_hours=None, fatigue=Fatigue(3, timedelta(days=30)))
MARKETING = Candidate("email", "marketing", NOW, NOW + timedelta(days=60))
SERVICE = Candidate("email", "transactional", NOW, NOW + timedelta(days=60))


def recipient(**extra) -> Recipient:
    return Recipient("Europe/Berlin", {"email": True}, {}, **extra)


def test_a_rating_of_one_or_two_holds_offers_for_the_configured_time() -> None:
    policy = ContactPolicy(OPEN)
    rated = recipient(last_rating=(2, NOW - timedelta(days=10)))
    assert policy.decide(MARKETING, rated, [], NOW) == Defer(
        NOW + timedelta(days=20), "unsatisfied"
    )
    assert policy.decide(SERVICE, rated, [], NOW) == Allow()
    happy = recipient(last_rating=(3, NOW - timedelta(days=10)))
    assert policy.decide(MARKETING, happy, [], NOW) == Allow()
    long_ago = recipient(last_rating=(1, NOW - timedelta(days=31)))
    assert policy.decide(MARKETING, long_ago, [], NOW) == Allow()
    soon = Candidate("email", "marketing", NOW, NOW + timedelta(days=5))
    assert policy.decide(soon, rated, [], NOW) == Skip("unsatisfied")


def test_fatigue_rests_after_n_unanswered_and_an_answer_ends_it() -> None:
    policy = ContactPolicy(OPEN)
    sent = [NOW - timedelta(days=d) for d in (40, 20, 5)]
    tired = recipient(unanswered=sent)
    assert policy.decide(MARKETING, tired, [], NOW) == Defer(
        sent[-1] + timedelta(days=30), "fatigue"
    )
    assert policy.decide(SERVICE, tired, [], NOW) == Allow()
    assert policy.decide(MARKETING, recipient(unanswered=sent[1:]), [], NOW) == Allow()
    rested = recipient(unanswered=[NOW - timedelta(days=d) for d in (90, 70, 31)])
    assert policy.decide(MARKETING, rested, [], NOW) == Allow()  # one more may go out
    off = ContactPolicy(PolicyRules(quiet_hours=None))
    assert policy.held(tired, NOW) is not None and off.held(tired, NOW) is None


@settings(max_examples=300, deadline=None)
@given(
    ages=st.lists(st.integers(0, 400), max_size=8),
    after=st.integers(1, 6),
    rest=st.integers(1, 90),
    rating=st.one_of(st.none(), st.tuples(st.integers(1, 5), st.integers(0, 60))),
)
def test_holds_only_delay_marketing_and_end_when_they_say(ages, after, rest, rating) -> None:
    rules = PolicyRules(quiet_hours=None, fatigue=Fatigue(after, timedelta(days=rest)))
    policy = ContactPolicy(rules)
    sent = sorted(NOW - timedelta(days=a) for a in ages)
    last = None if rating is None else (rating[0], NOW - timedelta(days=rating[1]))
    r = recipient(unanswered=sent, last_rating=last)
    decision = policy.decide(MARKETING, r, [], NOW)
    held = policy.held(r, NOW)
    assert policy.decide(SERVICE, r, [], NOW) == Allow()
    if held is None:
        assert decision == Allow()
        return
    until, reason = held
    assert until > NOW and reason in ("unsatisfied", "fatigue")
    assert decision in (Defer(until, reason), Skip(reason))
    assert policy.held(r, until) is None or policy.held(r, until)[0] > until  # never stuck


@pytest.mark.parametrize(
    ("provider", "table", "expected"),
    [
        ("outbox", {}, None),  # no provider reports opens: off
        ("sendgrid", {}, Fatigue()),
        ("sendgrid", {"fatigue": "off"}, None),
        ("outbox", {"fatigue": {"after": 4, "rest": "2w"}}, Fatigue(4, timedelta(weeks=2))),
    ],
)
def test_fatigue_is_on_by_default_only_where_opens_are_reported(
    tmp_path, provider, table, expected
):
    settings_ = load_settings(tmp_path, email_provider=provider, policy=table)
    assert settings_.policy_rules().fatigue == expected


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"fatigue": {"after": 0}}, "policy.fatigue.after: must be a whole number >= 1"),
        ({"fatigue": {"rest": "soon"}}, "policy.fatigue.rest: must look like"),
        ({"fatigue": {"every": 2}}, "policy.fatigue.every: unknown setting"),
        ({"fatigue": 5}, "policy.fatigue: expected a table"),
        ({"unsatisfied_hold": "forever"}, "policy.unsatisfied_hold: must look like"),
    ],
)
def test_bad_hold_settings_name_their_key(table, message) -> None:
    with pytest.raises(ValueError, match=message):
        PolicyRules.from_config(table)
