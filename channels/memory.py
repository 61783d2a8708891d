"""A channel that keeps what it sends in a list: for tests, the demo and benchmarks."""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterable

from channels.base import Channel, ChannelKind, OutgoingMessage, SendResult

FailureScript = Callable[[OutgoingMessage], BaseException | None]


class InMemoryChannel(Channel):
    """Records every accepted message in :attr:`sent`; can be scripted to fail.

    Failures come from two places, checked in this order for every send:

    * a queue of scripted outcomes (:meth:`fail_next` or an iterable ``fail_with``):
      an exception is raised, ``None`` lets that send succeed;
    * a callable ``fail_with(message)`` returning an exception to raise, or ``None``.
    """

    name = "memory"

    def __init__(
        self,
        kind: ChannelKind,
        *,
        fail_with: FailureScript | Iterable[BaseException | None] | None = None,
    ) -> None:
        self.kind = kind
        self.sent: list[OutgoingMessage] = []
        self.attempts = 0
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._script: deque[BaseException | None] = deque()
        self._fail_with: FailureScript | None = None
        if callable(fail_with):
            self._fail_with = fail_with
        elif fail_with is not None:
            self._script.extend(fail_with)

    def fail_next(self, *outcomes: BaseException | None) -> None:
        """Queue outcomes for the next sends: an exception to raise, or ``None`` to succeed."""
        with self._lock:
            self._script.extend(outcomes)

    def send(self, message: OutgoingMessage) -> SendResult:
        """Record ``message`` or raise the scripted failure."""
        if message.kind != self.kind:
            raise ValueError(f"{self.kind} channel cannot send a {message.kind} message")
        with self._lock:
            self.attempts += 1
            error = self._script.popleft() if self._script else None
            if error is None and self._fail_with is not None:
                error = self._fail_with(message)
            if error is not None:
                raise error
            self.sent.append(message)
            number = next(self._ids)
        return SendResult(provider=self.name, provider_message_id=f"mem-{self.kind}-{number}")

    def reset(self) -> None:
        """Forget sent messages, attempts and scripted failures."""
        with self._lock:
            self.sent.clear()
            self._script.clear()
            self.attempts = 0
