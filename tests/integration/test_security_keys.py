"""The project's secret: weak ones refused where it signs for real, one key per purpose."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import itsdangerous
import pytest
from typer.testing import CliRunner

from aftersale.cli import app as cli
from aftersale.keys import HOW_TO_MAKE_ONE, SigningKeys, key_problem
from campaigns.consent import unsubscribe_token, verify_unsubscribe_token
from templates.signing import PURPOSES, purpose_key
from tests.conftest import Harness
from tests.integration.admin_data import ADMIN, client_for, seed

STRONG = "Vq3x9LkP0sT7uYbN2mWcR8eZaJ4hG6dF"
OLD = "old-Vq3x9LkP0sT7uYbN2mWcR8eZaJ4hG6"


def _project(tmp_path: Path, key: str, provider: str = "outbox") -> Path:
    directory = tmp_path / "shop"
    assert CliRunner().invoke(cli, ["init", str(directory)]).exit_code == 0
    config = directory / "aftersale.toml"
    text = config.read_text(encoding="utf-8")
    start = text.index('secret_key = "')
    end = text.index('"', start + len('secret_key = "'))
    text = text[:start] + f'secret_key = "{key}"' + text[end + 1 :]
    text = text.replace('provider = "outbox"          # outbox | sendgrid | smtp',
                        f'provider = "{provider}"')  # fmt: skip
    config.write_text(text + '\n[sendgrid]\napi_key = "SG.x"\n', encoding="utf-8")
    return directory


@pytest.mark.parametrize("key", ["changeme", "test-secret-key", "a" * 40, "abcd" * 10])
def test_weak_keys_are_named(key: str) -> None:
    assert key_problem(key) is not None
    assert key_problem(STRONG) is None


@pytest.mark.parametrize("key", ["changeme", "short-but-random-9f8e7d"])
def test_serve_refuses_a_weak_key_and_says_how_to_make_one(tmp_path: Path, key: str) -> None:
    directory = _project(tmp_path, key)
    done = CliRunner().invoke(cli, ["-p", str(directory), "serve", "--port", "1"])
    assert done.exit_code == 2
    assert "secrets.token_urlsafe(32)" in " ".join(done.output.split())


def test_run_with_a_real_provider_refuses_a_weak_key(tmp_path: Path) -> None:
    directory = _project(tmp_path, "changemechangemechangemechangeme", provider="sendgrid")
    done = CliRunner().invoke(cli, ["-p", str(directory), "run", "--once"])
    assert done.exit_code == 2, done.output
    assert "well-known" in done.output
    done = CliRunner().invoke(cli, ["-p", str(directory), "simulate", "--until", "2027-01-01"])
    assert done.exit_code == 2 and "well-known" in done.output


def test_the_outbox_still_runs_with_a_development_key(tmp_path: Path) -> None:
    directory = _project(tmp_path, "changeme")
    done = CliRunner().invoke(cli, ["-p", str(directory), "run", "--once"])
    assert done.exit_code == 0, done.output


def test_init_writes_a_key_that_passes(tmp_path: Path) -> None:
    directory = tmp_path / "fresh"
    assert CliRunner().invoke(cli, ["init", str(directory)]).exit_code == 0
    text = (directory / "aftersale.toml").read_text(encoding="utf-8")
    key = text.split('secret_key = "', 1)[1].split('"', 1)[0]
    assert key_problem(key) is None
    assert "AFTERSALE_SECRET_KEY" in HOW_TO_MAKE_ONE


def test_every_purpose_has_its_own_key() -> None:
    keys = {purpose_key(STRONG, p) for p in PURPOSES}
    assert len(keys) == len(PURPOSES) and STRONG not in keys
    assert purpose_key(STRONG, "sessions") == purpose_key(STRONG, "sessions")
    with pytest.raises(ValueError, match="no signing purpose"):
        purpose_key(STRONG, "anything")


def test_an_unsubscribe_link_does_not_reveal_the_session_key(sqlite_harness: Harness) -> None:
    """A customer who recovers the key of their own link still cannot forge a session."""
    seed(sqlite_harness)
    project = sqlite_harness.project
    secret = project.secret_key()
    token = unsubscribe_token(project.signing_keys().key("unsubscribe"), "c1")
    assert verify_unsubscribe_token(secret, token) is None  # not signed with the raw secret
    payload = base64.b64encode(json.dumps({"uid": 1}).encode())
    with client_for(sqlite_harness) as client:
        keys = project.signing_keys()
        for key in (secret, keys.key("unsubscribe"), keys.key("sessions")):
            forged = itsdangerous.TimestampSigner(key).sign(payload).decode()
            client.cookies.set("aftersale_session", forged)
            assert client.get("/api/admin/me").status_code == 401
    assert ADMIN  # the seeded admin exists; only a login makes a session


def test_links_signed_before_a_rotation_keep_working(sqlite_harness: Harness) -> None:
    seed(sqlite_harness)
    project = sqlite_harness.project
    old_token = unsubscribe_token(SigningKeys(OLD).key("unsubscribe"), "c1")
    with client_for(sqlite_harness) as client:
        assert client.get(f"/unsubscribe/{old_token}").status_code == 404
    project.settings.secret_key_previous = OLD
    with client_for(sqlite_harness) as client:
        assert client.get(f"/unsubscribe/{old_token}").status_code == 200
        new_token = unsubscribe_token(project.signing_keys().key("unsubscribe"), "c1")
        assert client.get(f"/unsubscribe/{new_token}").status_code == 200


def test_links_sent_before_per_purpose_keys_still_unsubscribe(sqlite_harness: Harness) -> None:
    seed(sqlite_harness)
    project = sqlite_harness.project
    old_style = unsubscribe_token(project.secret_key(), "c1")  # signed with the secret itself
    with client_for(sqlite_harness) as client:
        assert client.get(f"/unsubscribe/{old_style}").status_code == 200
    assert project.secret_key() not in project.signing_keys().verifying("sessions")
