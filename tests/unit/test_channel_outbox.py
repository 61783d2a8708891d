"""The development outbox: .eml files and a JSON-lines SMS log."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from pathlib import Path

import pytest

from channels import OutgoingMessage
from channels.outbox import OutboxChannel


def test_eml_parses_into_text_and_html(tmp_path: Path) -> None:
    channel = OutboxChannel("email", tmp_path, sender="Shop <shop@example.com>")
    msg = OutgoingMessage(
        message_id="01JX",
        kind="email",
        to="a@example.org",
        subject="Danke",
        body_text="Danke für Ihren Einkauf.",
        body_html="<p>Danke für Ihren Einkauf.</p>",
    )

    result = channel.send(msg)

    path = tmp_path / "email" / "01JX.eml"
    assert result.details["path"] == str(path)
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert parsed["Message-ID"] == result.provider_message_id == "<01JX@example.com>"
    assert parsed.get_body(("plain",)).get_content().strip() == msg.body_text
    assert parsed.get_body(("html",)).get_content().strip() == msg.body_html
    assert [p.name for p in path.parent.iterdir()] == ["01JX.eml"]  # no temp files left


def test_sms_lines_from_many_threads(tmp_path: Path) -> None:
    channel = OutboxChannel("sms", tmp_path)

    def work(base: int) -> None:
        for n in range(100):
            channel.send(
                OutgoingMessage(f"s{base + n}", "sms", "+4915112345678", "Grüße " * 30, journey="j")
            )

    threads = [threading.Thread(target=work, args=(i * 1000,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    records = [
        json.loads(line) for line in (tmp_path / "sms.jsonl").read_text("utf-8").splitlines()
    ]
    assert len(records) == 600 == len({r["message_id"] for r in records})
    assert all(r["body"] == "Grüße " * 30 and r["journey"] == "j" for r in records)


@pytest.mark.parametrize("bad", ["../escape", "a/b", ".hidden", ""])
def test_message_ids_cannot_escape_the_directory(tmp_path: Path, bad: str) -> None:
    channel = OutboxChannel("email", tmp_path / "out")

    with pytest.raises(ValueError):
        channel.send(OutgoingMessage(bad, "email", "a@example.org", "x", subject="s"))

    assert not (tmp_path / "escape.eml").exists()
