"""The preference page: keep service e-mail and drop offers, or leave all; topics in the log."""

from __future__ import annotations

import pytest

from campaigns.consent import preferences_url, unsubscribe_token
from tests.conftest import item, purchase, utc
from tests.integration.test_unsubscribe import token_for
from tests.integration.test_webhooks import Web


def topics_form(*topics: str) -> dict[str, list[str]]:
    return {"topic": list(topics)}


def planned(web: Web) -> dict[str, object]:
    """Anna's purchase plans a loyalty offer (offers) and inspection invitations (service)."""
    web.h.customers([{"id": "c1", "email": "anna@example.org", "email_consent": "yes"}])
    bought = item(warranty_months=24, inspection_interval_days=30)
    web.h.events([purchase("e1", "c1", "2026-01-05T10:00:00+01:00", "o1", bought)])
    web.h.simulate(utc("2026-01-06T00:00:00"))
    return {m.journey_id: m for m in web.h.messages() if m.status == "planned"}


def test_the_page_shows_both_topics_kept_and_changes_nothing(web: Web) -> None:
    planned(web)
    before = web.snapshot()
    page = web.client.get(f"/preferences/{token_for(web)}")
    assert page.status_code == 200
    assert page.text.count('type="checkbox"') == 2 and page.text.count(" checked") == 2
    assert 'action="../preferences/' in page.text and "<script" not in page.text
    assert web.snapshot() == before


def test_keeping_service_drops_offers_and_the_log_names_the_topic(web: Web) -> None:
    before = planned(web)
    assert {"loyalty_offer", "inspection_invitation"} <= set(before)
    saved = web.client.post(f"/preferences/{token_for(web)}", data=topics_form("service"))
    assert saved.status_code == 200 and "Ihre Einstellungen sind gespeichert." in saved.text
    assert saved.text.count(" checked") == 1
    customer = web.customer()
    assert customer.email_consent is True
    assert customer.topic_consent == {"email:service": True, "email:offers": False}

    web.h.simulate(utc("2026-12-31T00:00:00"))
    offer = web.h.messages(id=before["loyalty_offer"].id)[0]
    assert (offer.status, offer.reason) == ("skipped", "no_consent:email:offers")
    invites = web.h.messages(journey_id="inspection_invitation", step="invite")
    assert len([m for m in invites if m.status == "sent"]) == 11  # monthly, all kept


def test_ticking_nothing_leaves_all_and_ticking_again_comes_back(web: Web) -> None:
    planned(web)
    url = f"/preferences/{token_for(web)}"
    left = web.client.post(url, data={})
    assert "Sie sind abgemeldet." in left.text
    assert web.customer().email_consent is False
    back = web.client.post(url, data=topics_form("offers", "service", "<script>"))
    assert "gespeichert" in back.text and "&lt;script&gt;" not in back.text
    customer = web.customer()
    assert (customer.email_consent, customer.email_consent_source) == (True, "preference_page")
    assert customer.topic_consent == {"email:service": True, "email:offers": True}


@pytest.mark.parametrize("how", ["form", "one_click"])
def test_unsubscribe_still_leaves_all_marketing_whatever_the_topics(web: Web, how: str) -> None:
    before = planned(web)
    web.client.post(f"/preferences/{token_for(web)}", data=topics_form("service"))
    url = f"/unsubscribe/{token_for(web)}"
    if how == "one_click":
        web.client.cookies.clear()
        web.client.post(url, content=b"List-Unsubscribe=One-Click",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    else:
        web.client.post(url)
    assert web.customer().email_consent is False
    web.h.simulate(utc("2026-12-31T00:00:00"))
    invite = web.h.messages(id=before["inspection_invitation"].id)[0]
    assert (invite.status, invite.reason) == ("skipped", "no_consent:email")


@pytest.mark.parametrize("mangle", ["tampered", "other_secret", "unknown_customer"])
def test_a_forged_token_cannot_change_preferences(web: Web, mangle: str) -> None:
    planned(web)
    key = web.h.project.signing_keys().key("unsubscribe")
    token = {
        "tampered": unsubscribe_token(key, "c1")[:-2] + "AA",
        "other_secret": unsubscribe_token("another-secret", "c1"),
        "unknown_customer": unsubscribe_token(key, "nobody"),
    }[mangle]
    before = web.snapshot()
    for method in ("get", "post"):
        response = getattr(web.client, method)(f"/preferences/{token}")
        assert response.status_code == 404 and "Dieser Link ist ungültig." in response.text
    assert web.snapshot() == before


def test_the_templates_link_leads_to_the_page(web: Web) -> None:
    planned(web)
    web.h.simulate(utc("2026-03-01T00:00:00"))
    offers = [m for m in web.h.email.sent if m.category == "marketing"]
    assert offers
    key = web.h.project.signing_keys().key("unsubscribe")
    url = preferences_url(web.h.project.settings.public_url, key, "c1")
    assert url in (offers[0].body_html or "") and url in offers[0].body_text
    path = url.split("://", 1)[1].split("/", 1)[1]
    assert web.client.get(f"/{path}").status_code == 200


def test_customers_csv_carries_topic_consents_and_a_plain_reimport_keeps_them(web: Web) -> None:
    web.h.customers([
        {"id": "c1", "email": "anna@example.org", "email_offers_consent": "no"},
        {"id": "c2", "email": "ben@example.org", "email_service_consent": "ja",
         "sms_offers_consent": "nein"},
        {"id": "c3", "email": "cem@example.org"},
    ])  # fmt: skip
    assert web.customer("c1").topic_consent == {"email:offers": False}
    assert web.customer("c2").topic_consent == {"email:service": True, "sms:offers": False}
    assert web.customer("c3").topic_consent is None
    assert "email_offers_consent" not in web.customer("c1").attributes

    web.h.customers([{"id": "c1", "email": "anna@example.org", "first_name": "Anna"}])
    assert web.customer("c1").topic_consent == {"email:offers": False}


def test_a_bad_topic_consent_names_its_line_and_column(web: Web, tmp_path) -> None:
    from campaigns.importing import import_customers

    path = tmp_path / "customers.csv"
    path.write_text("id,email,email_consent,email_offers_consent\n"
                    "c1,anna@example.org,yes,yes\nc2,ben@example.org,yes,vielleicht\n",
                    encoding="utf-8")  # fmt: skip
    report = import_customers(web.h.project.db, path)
    assert report.imported == 1
    (error,) = report.errors
    assert (error.line, error.field) == (3, "email_offers_consent")
