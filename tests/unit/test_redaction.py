"""Passwords, API keys and tokens never reach an error message or a log line."""

from __future__ import annotations

import logging

import pytest

from channels.errors import ConfigurationError
from channels.redaction import redact, redact_logs
from channels.smtp import SMTPServer
from tests.hostile import through_a_megabyte_of_each_shape
from tests.live_shop import live_shop_env

PASSWORD = "s3cr3t-Pa55"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"smtp://mailer:{PASSWORD}@mail.example:587", "smtp://mailer:***@mail.example:587"),
        (f"postgresql+psycopg://app:{PASSWORD}@db/shop", "postgresql+psycopg://app:***@db/shop"),
        ("Authorization: Bearer abc.DEF-123", "Authorization: Bearer ***"),
        ("key SG.abcdefghijkl.mnopqrstuvwx refused", "key SG.*** refused"),
        (f"?password={PASSWORD}&x=1", "?password=***&x=1"),
        ("smtps://mail.example:465", "smtps://mail.example:465"),
        ("smtp://mailer:pa/ss:w@rd@mail.example", "smtp://mailer:***@rd@mail.example"),
        ("url=(redis://:tok3n@cache:6379)", "url=(redis://:***@cache:6379)"),
    ],
)
def test_secrets_are_replaced(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_an_invalid_smtp_url_is_named_without_its_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        SMTPServer.parse(f"smtp://mailer:{PASSWORD}@mail.example:notaport")
    assert PASSWORD not in str(caught.value)
    assert "smtp://mailer:***@mail.example" in str(caught.value)


def test_log_lines_and_tracebacks_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    redact_logs()
    log = logging.getLogger("aftersale.test")
    with caplog.at_level(logging.INFO):
        log.warning("connecting to %s", f"smtp://mailer:{PASSWORD}@mail.example")
        try:
            raise ValueError(f"cannot reach postgresql://app:{PASSWORD}@db/shop")
        except ValueError:
            log.exception("tick failed")
    assert PASSWORD not in caplog.text
    assert "smtp://mailer:***@mail.example" in caplog.text
    assert "postgresql://app:***@db/shop" in caplog.text


def test_the_cli_names_the_bad_setting_without_the_password(tmp_path) -> None:
    from typer.testing import CliRunner

    from aftersale.cli import app

    directory = tmp_path / "shop"
    assert CliRunner().invoke(app, ["init", str(directory)]).exit_code == 0
    env = {"AFTERSALE_EMAIL_PROVIDER": "smtp",
           "AFTERSALE_SMTP_URL": f"smtp://mailer:{PASSWORD}@mail.example:notaport",
           **live_shop_env()}  # fmt: skip
    done = CliRunner().invoke(app, ["-p", str(directory), "run", "--once"], env=env)
    assert done.exit_code == 2
    assert PASSWORD not in done.output and "mailer:***@" in done.output


def test_a_megabyte_line_of_any_shape_is_redacted() -> None:
    """60,000 letters in a request line took 20 s in the access log's redaction: a scheme
    was tried at every letter, each try scanning to the end of the run."""
    through_a_megabyte_of_each_shape("channels.redaction.redact")
