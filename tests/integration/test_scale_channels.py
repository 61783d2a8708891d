"""A channel for dispatcher processes in tests: every send is a line in a ledger file.

The ledger survives SIGKILL (each line is one ``write`` on an ``O_APPEND`` descriptor), so a
test can count, across processes and crashes, how often each message reached "the provider".
Worker processes find it through ``WorkerSpec(channels="tests.integration.test_scale_channels:
ledger_channels")``; the ledger path and a per-send delay come from the environment, which
spawned processes inherit.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from channels import Channel, OutgoingMessage, SendResult

LEDGER_ENV = "AFTERSALE_TEST_LEDGER"
DELAY_ENV = "AFTERSALE_TEST_SEND_DELAY"


class LedgerChannel(Channel):
    """Appends ``<message id> <pid>`` to a file per send, after an optional delay."""

    name = "ledger"

    def __init__(self, kind: Any, path: Path, delay: float = 0.0) -> None:
        self.kind = kind
        self.path = path
        self.delay = delay

    def send(self, message: OutgoingMessage) -> SendResult:
        if self.delay:
            time.sleep(self.delay)  # the provider's latency: a kill lands while we wait
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{message.message_id} {os.getpid()}\n".encode())
        finally:
            os.close(fd)
        return SendResult(
            provider=self.name, provider_message_id=f"{os.getpid()}-{message.message_id}"
        )


def ledger_channels(_project: Any) -> Mapping[str, Channel]:
    path = Path(os.environ[LEDGER_ENV])
    delay = float(os.environ.get(DELAY_ENV, "0"))
    return {"email": LedgerChannel("email", path, delay), "sms": LedgerChannel("sms", path, delay)}


def ledger_counts(path: Path) -> Counter[int]:
    """How often each message id was sent, over every process that wrote the ledger."""
    if not path.exists():
        return Counter()
    return Counter(int(line.split()[0]) for line in path.read_text().splitlines() if line)
