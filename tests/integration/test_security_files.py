"""Files that hold keys or personal data are readable by their owner only."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aftersale.app import Project
from aftersale.cli import app as cli
from channels import OutgoingMessage
from channels.outbox import OutboxChannel


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_settings_and_database_are_private(tmp_path: Path) -> None:
    directory = tmp_path / "shop"
    assert CliRunner().invoke(cli, ["init", str(directory)]).exit_code == 0
    assert mode(directory / "aftersale.toml") == 0o600
    project = Project.open(directory)
    project.db.dispose()
    assert mode(directory / "aftersale.db") == 0o600


def test_the_outbox_is_private(tmp_path: Path) -> None:
    email = OutboxChannel("email", tmp_path / "outbox")
    sms = OutboxChannel("sms", tmp_path / "outbox")
    email.send(OutgoingMessage("m1", "email", "anna@example.org", "Hallo", subject="Hi"))
    sms.send(OutgoingMessage("m2", "sms", "+4915112345678", "Hallo"))
    assert mode(tmp_path / "outbox") == 0o700
    assert mode(tmp_path / "outbox" / "email") == 0o700
    assert mode(tmp_path / "outbox" / "email" / "m1.eml") == 0o600
    assert mode(tmp_path / "outbox" / "sms.jsonl") == 0o600


def test_an_outbox_removed_while_running_comes_back_private(tmp_path: Path) -> None:
    """The outbox's folder is looked at once per message: removed between two sends, it is
    made again, still readable by the owner only."""
    email = OutboxChannel("email", tmp_path / "outbox")
    email.send(OutgoingMessage("m1", "email", "anna@example.org", "Hallo", subject="Hi"))
    shutil.rmtree(tmp_path / "outbox")
    email.send(OutgoingMessage("m2", "email", "anna@example.org", "Hallo", subject="Hi"))
    assert mode(tmp_path / "outbox") == 0o700
    assert mode(tmp_path / "outbox" / "email") == 0o700
    assert mode(tmp_path / "outbox" / "email" / "m2.eml") == 0o600


def test_the_hand_off_journal_is_private(tmp_path: Path) -> None:
    from scheduler.handoff import journal_for

    directory = tmp_path / "shop"
    assert CliRunner().invoke(cli, ["init", str(directory)]).exit_code == 0
    project = Project.open(directory)
    journal = journal_for(project.db)
    try:
        journal.open()  # a dispatcher opens it before its first reservation
        files = directory / "aftersale.db.handoffs"
        assert mode(files) == 0o700
        assert {mode(path) for path in files.iterdir()} == {0o600}
        assert len(list(files.iterdir())) == 2  # the fences, and this dispatcher's file
    finally:
        journal.close()
        project.db.dispose()
