"""Hand-offs recorded as they happen, so a crash loses only the sends in flight.

Before a sending thread calls the provider, :meth:`HandOffs.enter` commits the message's
``handed_over_at`` (:func:`campaigns.transitions.hand_over`, which is also the last check of
consent and suppression). Threads arriving while a commit is under way wait and go in the
next one together: one transaction marks the hand-offs of all of them, and journals the
answers of the sends that finished since the last commit (provider and message id, links,
locale). Groups are as large as the sends that are ready at once, about the number of
sending threads, so the statements per batch grow with the batch divided by that number.

After a crash, lease expiry reads what was committed: a message never handed over goes
back to ``planned``; one with a journalled answer is ``sent``; only one handed over with no
answer yet — at most the sends that were in flight — is ``unknown``.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.engine import Engine

from campaigns import transitions

log = logging.getLogger(__name__)
T = TypeVar("T")


class Verdict(enum.Enum):
    """What :meth:`HandOffs.enter` decided for one message."""

    GO = "go"  # marked: send it now
    WITHDRAWN = "withdrawn"  # consent or suppression changed: skip it (see ``reason``)
    GONE = "gone"  # no longer this sender's (lease ran out, another dispatcher has it)
    NOT_MARKED = "not_marked"  # the database failed: not sent, back to planned


@dataclass
class _Ticket:
    message_id: int
    verdict: Verdict | None = None
    reason: str | None = None


class HandOffs:
    """Group commits of hand-offs and journalled answers, shared by the sending threads."""

    def __init__(
        self,
        *,
        db: Engine,
        now: Callable[[], datetime],
        retry: Callable[[Callable[[], T], str], T],
    ) -> None:
        self.db = db
        self._now = now
        self._retry = retry
        self._cond = threading.Condition()
        self._waiting: list[_Ticket] = []
        self._answers: list[dict[str, Any]] = []
        self._busy = False

    def enter(self, message_id: int) -> tuple[Verdict, str | None]:
        """Block until the hand-off of ``message_id`` is committed (or refused)."""
        ticket = _Ticket(message_id)
        with self._cond:
            self._waiting.append(ticket)
            while ticket.verdict is None:
                if self._busy:
                    self._cond.wait()
                    continue
                self._busy = True
                group, self._waiting = self._waiting, []
                answers, self._answers = self._answers, []
                self._cond.release()
                try:
                    self._commit(group, answers)
                finally:
                    self._cond.acquire()
                    self._busy = False
                    self._cond.notify_all()
        return ticket.verdict, ticket.reason

    def journal(self, answer: dict[str, Any]) -> None:
        """Queue a provider's answer (``_id`` and outcome columns) for the next commit."""
        with self._cond:
            self._answers.append(answer)

    def _commit(self, group: list[_Ticket], answers: list[dict[str, Any]]) -> None:
        ids = [t.message_id for t in group]
        try:
            marked, reasons = self._retry(lambda: self._mark(ids, answers), "hand-off")
        except Exception:  # noqa: BLE001 - not marked means not sent; the batch goes on
            log.exception("hand-off of %d messages not recorded; they are not sent", len(ids))
            for ticket in group:
                ticket.verdict = Verdict.NOT_MARKED
            return
        for ticket in group:
            if ticket.message_id in marked:
                ticket.verdict = Verdict.GO
            elif ticket.message_id in reasons:
                ticket.verdict, ticket.reason = Verdict.WITHDRAWN, reasons[ticket.message_id]
            else:
                ticket.verdict = Verdict.GONE

    def _mark(self, ids: list[int], answers: list[dict[str, Any]]):
        now = self._now()
        with self.db.begin() as conn:
            transitions.journal_outcomes(conn, answers, now)
            marked = transitions.hand_over(conn, ids, now)
            missing = [i for i in ids if i not in marked]
            return marked, transitions.withdrawn(conn, missing)
