"""The console's send log as support reads it: the latest decision first, planned messages
in a view of their own, deferrals found by reason, unknown values answered with the choices."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from aftersale.accounts import create_user
from aftersale.sendlog import LogFilter, decided_log, upcoming_log
from campaigns.models import Message
from tests.conftest import Harness, item, purchase, utc
from tests.integration.admin_data import VIEWER, client_for, login

messages_t = Message.__table__


@pytest.fixture
def shop(harness: Harness) -> Harness:
    harness.customers(
        [
            {"id": "c1", "email": "anna@example.com", "first_name": "Anna",
             "timezone": "Europe/Berlin"},
            {"id": "c2", "email": "bob@example.com", "first_name": "Bob",
             "timezone": "America/New_York"},
        ]
    )  # fmt: skip
    harness.events(
        [  # 22:00 in Berlin: the thank-you due at midnight waits for the end of quiet hours
            purchase("e1", "c1", "2026-03-02T22:00:00+01:00", "o1",
                     item(warranty_months=24, inspection_interval_days=30)),
            purchase("e2", "c2", "2026-03-02T10:00:00-05:00", "o2", item()),
        ]
    )  # fmt: skip
    harness.simulate(utc("2026-04-20T00:00:00"), start=utc("2026-03-02T08:00:00"))
    create_user(harness.project.db, *VIEWER, "viewer", utc("2026-03-01T00:00:00"))
    return harness


@pytest.fixture
def client(shop: Harness) -> Iterator[TestClient]:
    with client_for(shop) as c:
        login(c, VIEWER)
        yield c


def ids(page: str) -> list[int]:
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [int(n) for n in re.findall(r"<tr>\s*<td>(\d+)</td>", body)]


def expected(shop: Harness) -> tuple[list[int], list[int]]:
    m = messages_t.c
    with shop.project.db.connect() as conn:
        decided = conn.execute(
            sa.select(m.id).where(m.status != "planned").order_by(m.updated_at.desc(), m.id.desc())
        ).scalars()
        planned = conn.execute(
            sa.select(m.id).where(m.status == "planned").order_by(m.due_at, m.id)
        ).scalars()
        return list(decided), list(planned)


def test_latest_decision_first_and_planned_messages_in_their_own_view(
    shop: Harness, client: TestClient
) -> None:
    decided, planned = expected(shop)
    assert len(decided) > 1 and len(planned) > 1 and decided != sorted(decided, reverse=True)
    page = client.get("/admin/log").text
    assert ids(page) == decided and 'aria-current="page" class="current">Decided' in page
    upcoming = client.get("/admin/log", params={"view": "upcoming"}).text
    assert ids(upcoming) == planned and "planned (UTC)" in upcoming
    assert ids(client.get("/admin/log", params={"status": "planned"}).text) == planned


def test_pages_continue_where_the_last_ended(shop: Harness) -> None:
    decided, planned = expected(shop)
    for read, want in ((decided_log, decided), (upcoming_log, planned)):
        seen: list[int] = []
        with shop.project.db.connect() as conn:
            page = read(conn, LogFilter(), limit=2)
            while page:
                seen += [r.id for r in page]
                last = page[-1]
                at = last.due_at if read is upcoming_log else last.updated_at
                page = read(conn, LogFilter(), limit=2, after=(at, last.id))
        assert seen == want


def test_the_older_link_carries_the_view_and_the_position(
    shop: Harness, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aftersale.admin import pages

    decided, _ = expected(shop)
    monkeypatch.setattr(pages, "PAGE_SIZE", 2)
    first = client.get("/admin/log").text
    link = re.search(r'href="/admin/log\?([^"]+)" rel="next"', first)
    assert link and "view=decided" in link.group(1) and "after=" in link.group(1)
    second = client.get("/admin/log?" + link.group(1).replace("&amp;", "&")).text
    assert ids(first) + ids(second) == decided[:4]
    assert "← newest" in second
    assert ids(client.get("/admin/log", params={"after": "garbage"}).text) == decided[:2]


def test_reason_finds_deferrals_as_well_as_final_reasons(client: TestClient) -> None:
    page = client.get("/admin/log", params={"reason": "quiet"}).text
    assert ids(page) and "thank_you" in page and "st-sent" in page
    assert "/admin/customers/c2" not in page


def test_an_unknown_view_names_the_views(client: TestClient) -> None:
    page = client.get("/admin/log", params={"view": "future"}).text
    assert "no view &#39;future&#39;; choose one of: decided, upcoming" in page
    assert "No decided messages match" not in page and ids(page) == []
