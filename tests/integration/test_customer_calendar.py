"""The customer view names the public holidays that apply, in the console and the CLI."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from typer.testing import CliRunner

from aftersale.accounts import create_user
from aftersale.cli import app as cli
from aftersale.errors import ConfigurationError
from tests.conftest import Harness, utc
from tests.integration.admin_data import VIEWER, client_for, login

AUTO = """
secret_key = "test-secret-key"
[policy]
default_timezone = "Europe/Berlin"
public_holidays = "auto"
default_region = "DE"
"""
CUSTOMERS = [
    {"id": "ny", "email": "ny@example.com", "country": "US", "timezone": "America/New_York"},
    {"id": "ph", "email": "ph@example.com", "phone": "+12125551200"},
    {"id": "be", "email": "be@example.com"},
]


@pytest.fixture
def shop(make_harness: Callable[..., Harness]) -> Iterator[Harness]:
    h = make_harness(toml=AUTO)
    assert h.customers(CUSTOMERS).ok
    create_user(h.project.db, *VIEWER, "viewer", utc("2026-03-01T00:00:00"))
    yield h
    h.project.close()


@pytest.mark.parametrize(
    ("customer", "calendar"),
    [("ny", "US (from country)"), ("ph", "US (from phone)"), ("be", "DE (default region)")],
)
def test_the_console_shows_the_calendar_that_applies(
    shop: Harness, customer: str, calendar: str
) -> None:
    with client_for(shop) as client:
        login(client, VIEWER)
        page = client.get(f"/admin/customers/{customer}").text
    assert f'public holidays: <span class="holidays">{calendar}</span>' in page


def test_the_cli_shows_the_calendar_that_applies(shop: Harness) -> None:
    runner = CliRunner()
    shown = runner.invoke(cli, ["--project", str(shop.directory), "customer", "ny"])
    assert shown.exit_code == 0, shown.output
    assert "public holidays: US (from country)" in shown.output


def test_a_fixed_region_is_shown_as_the_projects(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()  # public_holidays = "DE"
    try:
        assert h.customers(CUSTOMERS[:1]).ok
        shown = CliRunner().invoke(cli, ["--project", str(h.directory), "customer", "ny"])
    finally:
        h.project.close()
    assert "public holidays: DE (the project's calendar)" in shown.output


def test_a_bad_transactional_quiet_is_refused_naming_the_allowed_values(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(toml=AUTO + 'transactional_quiet = "weekends"\n')
    try:
        done = CliRunner().invoke(
            cli, ["--project", str(h.directory), "simulate", "--until", "2026-02-01"]
        )
    finally:
        h.project.close()
    assert done.exit_code == 2
    said = " ".join(done.output.split())  # the terminal wraps long lines
    assert (
        'policy.transactional_quiet: must be one of "hours", "all", "none", got \'weekends\''
        in said
    )


def test_broken_policy_settings_are_named_before_the_customer_view(
    make_harness: Callable[..., Harness],
) -> None:
    """Every command checks the settings first: the customer view names the bad value and
    its line instead of showing a calendar it cannot know."""
    h = make_harness(toml=AUTO + 'transactional_quiet = "weekends"\n')
    try:
        assert h.customers(CUSTOMERS[:1]).ok
        shown = CliRunner().invoke(cli, ["--project", str(h.directory), "customer", "ny"])
    finally:
        h.project.close()
    # The installed command prints this one line and exits 2 (aftersale.cli._Shell).
    assert isinstance(shown.exception, ConfigurationError), shown.output
    said = str(shown.exception)
    assert "aftersale.toml:" in said and "policy.transactional_quiet" in said
