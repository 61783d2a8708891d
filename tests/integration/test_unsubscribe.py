"""Unsubscribe links: a preference page that asks, a POST that acts, RFC 8058 one-click."""

from __future__ import annotations

from typing import Any

import pytest

from campaigns.consent import unsubscribe_token
from tests.conftest import utc
from tests.integration.test_webhooks import Web, sold


def token_for(web: Web, customer_id: str = "c1") -> str:
    return unsubscribe_token(web.h.project.signing_keys().key("unsubscribe"), customer_id)


def planned_marketing_email(web: Web) -> Any:
    sold(web.h, sms=False)
    web.h.simulate(utc("2026-01-06T00:00:00"))
    (loyalty,) = web.h.messages(journey_id="loyalty_offer")
    assert loyalty.status == "planned"
    return loyalty


def test_get_shows_the_preference_page_and_changes_nothing(web: Web) -> None:
    planned_marketing_email(web)
    before = web.snapshot()

    page = web.client.get(f"/unsubscribe/{token_for(web)}")

    assert page.status_code == 200
    assert "Gar keine Werbe-E-Mails mehr?" in page.text  # the customer's language: de
    leave = f'<form class="leave" method="post" action="../unsubscribe/{token_for(web)}">'
    assert leave in page.text
    assert "anna@example.org" in page.text
    assert web.snapshot() == before


def test_english_customers_get_the_english_page(web: Web) -> None:
    web.h.customers([{"id": "c2", "email": "ann@example.org", "locale": "en-GB"}])
    page = web.client.get(f"/unsubscribe/{token_for(web, 'c2')}")
    assert "No more marketing e-mails at all?" in page.text
    assert '<html lang="en">' in page.text


@pytest.mark.parametrize("how", ["form", "one_click"])
def test_post_unsubscribes_and_the_next_dispatch_skips(web: Web, how: str) -> None:
    loyalty = planned_marketing_email(web)
    url = f"/unsubscribe/{token_for(web)}"
    if how == "form":
        response = web.client.post(url)
    else:  # what mailbox providers send: form-encoded, no cookies
        web.client.cookies.clear()
        response = web.client.post(
            url,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    assert response.status_code == 200
    assert "Sie sind abgemeldet." in response.text
    customer = web.customer()
    assert (customer.email_consent, customer.email_consent_source) == (False, "unsubscribe_link")

    web.h.simulate(utc("2026-03-01T00:00:00"))
    (row,) = web.h.messages(id=loyalty.id)
    assert (row.status, row.reason) == ("skipped", "no_consent:email")
    assert all(m.category == "transactional" for m in web.h.email.sent)


def test_repeating_the_post_is_harmless(web: Web) -> None:
    planned_marketing_email(web)
    url = f"/unsubscribe/{token_for(web)}"
    assert web.client.post(url).status_code == 200
    assert web.client.post(url).status_code == 200
    assert web.customer().email_consent is False


@pytest.mark.parametrize("mangle", ["tampered", "other_secret", "garbage", "unknown_customer"])
def test_invalid_tokens_are_404_and_change_nothing(web: Web, mangle: str) -> None:
    planned_marketing_email(web)
    good = token_for(web)
    token = {
        "tampered": unsubscribe_token(web.h.project.signing_keys().key("unsubscribe"), "c1")[:-2]
        + "AA",
        "other_secret": unsubscribe_token("another-secret", "c1"),
        "garbage": "no-dot-here",
        "unknown_customer": token_for(web, "nobody"),
    }[mangle]
    assert token != good
    before = web.snapshot()

    for method in ("get", "post"):
        response = getattr(web.client, method)(f"/unsubscribe/{token}")
        assert response.status_code == 404
        assert "Dieser Link ist ungültig." in response.text

    assert web.snapshot() == before
