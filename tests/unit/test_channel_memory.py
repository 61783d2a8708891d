"""The in-memory channel other packages test against."""

from __future__ import annotations

import contextlib
import threading

import pytest

from channels import OutgoingMessage, PermanentChannelError, TransientChannelError
from channels.memory import InMemoryChannel


def sms(n: int) -> OutgoingMessage:
    return OutgoingMessage(message_id=f"m{n}", kind="sms", to="+491511", body_text=f"hi {n}")


def test_records_and_resets() -> None:
    channel = InMemoryChannel("sms")

    first = channel.send(sms(1))
    channel.send(sms(2))

    assert [m.message_id for m in channel.sent] == ["m1", "m2"]
    assert first.provider == "memory" and first.provider_message_id == "mem-sms-1"
    channel.reset()
    assert channel.sent == [] and channel.attempts == 0


def test_scripted_outcomes_apply_in_order() -> None:
    channel = InMemoryChannel("sms", fail_with=[TransientChannelError("busy"), None])
    channel.fail_next(PermanentChannelError("no"))

    with pytest.raises(TransientChannelError):
        channel.send(sms(1))
    channel.send(sms(2))
    with pytest.raises(PermanentChannelError):
        channel.send(sms(3))
    channel.send(sms(4))

    assert [m.message_id for m in channel.sent] == ["m2", "m4"]
    assert channel.attempts == 4


def test_callable_decides_per_message() -> None:
    def fail_odd(message: OutgoingMessage) -> Exception | None:
        return PermanentChannelError("odd") if int(message.message_id[1:]) % 2 else None

    channel = InMemoryChannel("sms", fail_with=fail_odd)
    for n in range(6):
        with contextlib.suppress(PermanentChannelError):
            channel.send(sms(n))

    assert [m.message_id for m in channel.sent] == ["m0", "m2", "m4"]


def test_thread_safe_under_contention() -> None:
    channel = InMemoryChannel("sms")

    def work(base: int) -> None:
        for n in range(500):
            channel.send(sms(base + n))

    threads = [threading.Thread(target=work, args=(i * 1000,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(channel.sent) == 4000 == channel.attempts
    assert len({m.message_id for m in channel.sent}) == 4000


def test_wrong_kind() -> None:
    with pytest.raises(ValueError):
        InMemoryChannel("email").send(sms(1))
