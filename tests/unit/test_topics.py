"""Consent per channel and topic: the policy's rule 3, journeys' `topic:` and its validation."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from campaigns.consent import TOPICS, chosen_topics, consents_to, with_topics
from campaigns.journeys import BUILTIN_DIR, load_journeys
from campaigns.policy import Allow, Candidate, ContactPolicy, PolicyRules, Recipient, Skip

NOON = datetime(2026, 6, 10, 10, 0, tzinfo=UTC)  # a Wednesday, noon in Berlin
POLICY = ContactPolicy(PolicyRules())


def decide(*, channel_consent: bool = True, topics: dict | None = None,
           topic: str | None = "offers", category: str = "marketing") -> object:  # fmt: skip
    candidate = Candidate("email", category, NOON, topic=topic)  # type: ignore[arg-type]
    recipient = Recipient("Europe/Berlin", {"email": channel_consent, "sms": False}, {},
                          topic_consent=topics)  # fmt: skip
    return POLICY.decide(candidate, recipient, [], NOON)


def test_a_dropped_topic_is_skipped_naming_it() -> None:
    dropped = {"email:offers": False, "email:service": True}
    assert decide(topics=dropped) == Skip("no_consent:email:offers")
    assert decide(topics=dropped, topic="service") == Allow()


def test_without_channel_consent_the_reason_stays_the_channel() -> None:
    kept = {"email:offers": True}
    assert decide(channel_consent=False, topics=kept) == Skip("no_consent:email")


def test_a_topic_nobody_decided_on_follows_the_channel() -> None:
    assert decide(topics=None) == Allow()
    assert decide(topics={"sms:offers": False}) == Allow()  # another channel's choice


def test_transactional_mail_needs_no_topic_consent() -> None:
    assert (
        decide(topics={"email:service": False}, topic="service", category="transactional")
        == Allow()
    )


choices = st.dictionaries(
    st.sampled_from([f"{c}:{t}" for c in ("email", "sms") for t in TOPICS]), st.booleans()
)


@given(channel=st.booleans(), chosen=choices, topic=st.sampled_from(TOPICS))
def test_marketing_goes_out_exactly_when_channel_and_topic_agree(
    channel: bool, chosen: dict[str, bool], topic: str
) -> None:
    decision = decide(channel_consent=channel, topics=chosen, topic=topic)
    agreed = channel and chosen.get(f"email:{topic}", True)
    assert (decision == Allow()) is agreed
    if not agreed:
        reason = "no_consent:email" if not channel else f"no_consent:email:{topic}"
        assert decision == Skip(reason)
    assert consents_to(channel, chosen, "email", topic) is agreed


@given(chosen=choices, kept=st.sets(st.sampled_from(TOPICS)))
def test_saving_topics_decides_every_topic_of_the_channel_and_no_other(
    chosen: dict[str, bool], kept: set[str]
) -> None:
    merged = with_topics(chosen, "email", kept)
    assert chosen_topics(True, merged) == kept
    assert {k: v for k, v in merged.items() if k.startswith("sms:")} == {
        k: v for k, v in chosen.items() if k.startswith("sms:")
    }


def test_builtin_journeys_name_their_topics() -> None:
    loaded, problems = load_journeys(None)
    assert not problems
    topics = {item.journey.id: item.journey.topic for item in loaded}
    assert topics == {"thank_you": "service", "inspection_invitation": "service",
                      "loyalty_offer": "offers", "extended_warranty": "offers"}  # fmt: skip


@pytest.mark.parametrize("topic", ["news", "Offers", 3, ""])
def test_an_unknown_topic_is_an_error_naming_the_known_ones(tmp_path: Path, topic: object) -> None:
    journey = yaml.safe_load((BUILTIN_DIR / "loyalty_offer.yaml").read_text(encoding="utf-8"))
    journey["topic"] = topic
    (tmp_path / "loyalty_offer.yaml").write_text(yaml.safe_dump(journey), encoding="utf-8")
    _, problems = load_journeys(tmp_path)
    (problem,) = [p for p in problems if "topic" in p.message]
    assert problem.level == "error" and "service, offers" in problem.message


def test_a_journey_without_a_topic_counts_as_offers(tmp_path: Path) -> None:
    journey = yaml.safe_load((BUILTIN_DIR / "loyalty_offer.yaml").read_text(encoding="utf-8"))
    journey.pop("topic")
    (tmp_path / "loyalty_offer.yaml").write_text(yaml.safe_dump(journey), encoding="utf-8")
    loaded, _ = load_journeys(tmp_path)
    untopical = next(i.journey for i in loaded if i.source.endswith("loyalty_offer.yaml")
                     and str(tmp_path) in i.source)  # fmt: skip
    assert untopical.topic is None and untopical.consent_topic == "offers"
