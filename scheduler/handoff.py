"""Hand-offs recorded as they happen, so a crash loses only the sends in flight.

Before a sending thread calls the provider, :meth:`HandOffs.enter` records that the message
is being handed over. Threads arriving while a record is being written wait and go in the
next one together (a group commit), which also journals the answers of the sends that
finished since (provider and message id, links, locale; or a refusal's reason). A message
is handed over at most once until its outcome is recorded: only the dispatcher whose mark
lands sends it.

Where the record goes depends on the database:

* **PostgreSQL** (:class:`TableJournal`): the message's own ``handed_over_at`` and outcome
  columns (:func:`campaigns.transitions.hand_over`), in one short transaction; rows are
  locked one by one, so this never waits for another dispatcher's reservation.
* **SQLite** (:class:`FileJournal`): a small SQLite database beside the project's
  (``<database>.handoffs``), keyed by message. The project's database has a single
  writer, and a hand-off written there would wait for every reservation and record of the
  batch before; the journal has a lock of its own, and every dispatcher of a SQLite project
  runs on the machine that holds both files. An entry lives until the message's outcome is
  recorded (or its lease expires): while it exists, nobody else may hand the message over.

After a crash, lease expiry reads the journal: a message never handed over goes back to
``planned``; one with a journalled answer is settled as it says; only one handed over with
no answer yet — at most one per sending thread — is ``unknown``.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy.engine import Engine

from campaigns import transitions
from campaigns.models import sqlite_datetime

log = logging.getLogger(__name__)
T = TypeVar("T")


class Verdict(enum.Enum):
    """What :meth:`HandOffs.enter` decided for one message."""

    GO = "go"  # marked: send it now
    WITHDRAWN = "withdrawn"  # consent or suppression changed: skip it (see ``reason``)
    GONE = "gone"  # no longer this sender's (lease ran out, another dispatcher has it)
    NOT_MARKED = "not_marked"  # the database failed: not sent, back to planned


@dataclass(frozen=True)
class Entry:
    """What the journal holds for one reserved message."""

    handed_over: bool
    provider: str | None = None
    provider_message_id: str | None = None
    details: dict[str, Any] | None = None
    locale: str | None = None
    subject: str | None = None
    reason: str | None = None


class Journal(Protocol):
    """Where hand-offs and answers are recorded (one per database kind)."""

    def mark(
        self, tickets: list[tuple[int, datetime]], answers: list[dict[str, Any]], at: datetime
    ) -> set[int]:
        """Journal ``answers``, mark ``tickets`` (message id, lease); return the marked ids."""
        ...

    def entries(self, rows: Iterable[Any]) -> dict[int, Entry]:
        """What was journalled for these ``sending`` rows whose lease ran out."""
        ...

    def forget(self, ids: Collection[int]) -> None:
        """Drop what is journalled for messages whose outcome is now recorded."""
        ...

    def close(self) -> None:
        """Release what the journal holds open."""
        ...


def journal_for(db: Engine) -> Journal:
    """The journal for this database: beside the file for SQLite, in the table otherwise."""
    database = db.url.database
    if db.dialect.name == "sqlite" and database and database != ":memory:":
        return FileJournal(db, Path(f"{database}.handoffs"))
    return TableJournal(db)


def _held_lock() -> Any:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass
class _Ticket:
    message_id: int
    lease: datetime
    verdict: Verdict | None = None
    wake: Any = field(default_factory=_held_lock)  # released once the thread may go on


class HandOffs:
    """Group commits of hand-offs and journalled answers, shared by the sending threads."""

    def __init__(
        self,
        *,
        journal: Journal,
        now: Callable[[], datetime],
        retry: Callable[[Callable[[], T], str], T],
    ) -> None:
        self.journal = journal
        self._now = now
        self._retry = retry
        self._lock = threading.Lock()
        self._waiting: list[_Ticket] = []
        self._answers: list[dict[str, Any]] = []
        self._busy = False

    def enter(self, message_id: int, lease: datetime) -> Verdict:
        """Block until the hand-off of ``message_id`` (reserved until ``lease``) is recorded
        or refused.

        One thread at a time writes a group; the threads arriving meanwhile wait, each on a
        lock of its own, and are woken only when their own group is decided (or, the first
        of them, to write the next group): a wake-up costs a waiting thread the interpreter
        lock, and waking every waiter after every write had cost more than the writes.
        """
        ticket = _Ticket(message_id, lease)
        with self._lock:
            self._waiting.append(ticket)
            lead = not self._busy
            self._busy = True
        if not lead:
            ticket.wake.acquire()  # released when decided, or to write the next group
            if ticket.verdict is not None:
                return ticket.verdict
        self._lead()
        assert ticket.verdict is not None
        return ticket.verdict

    def _lead(self) -> None:
        """Write the waiting group, then wake it and hand the writing on to a later one."""
        with self._lock:
            group, self._waiting = self._waiting, []
            answers, self._answers = self._answers, []
        try:
            self._commit(group, answers)
        finally:
            with self._lock:
                following = self._waiting[0] if self._waiting else None
                self._busy = following is not None
            for ticket in group:
                if ticket.verdict is None:  # only an interrupt gets here: not sent
                    ticket.verdict = Verdict.NOT_MARKED
                ticket.wake.release()
            if following is not None:
                following.wake.release()

    def journal_answer(self, answer: dict[str, Any]) -> None:
        """Queue a provider's answer (``_id`` and outcome columns) for the next commit."""
        with self._lock:
            self._answers.append(answer)

    def _commit(self, group: list[_Ticket], answers: list[dict[str, Any]]) -> None:
        tickets = [(t.message_id, t.lease) for t in group]
        try:
            marked = self._retry(
                lambda: self.journal.mark(tickets, answers, self._now()), "hand-off"
            )
        except Exception:  # noqa: BLE001 - not marked means not sent; the batch goes on
            log.exception("hand-off of %d messages not recorded; they are not sent", len(group))
            for ticket in group:
                ticket.verdict = Verdict.NOT_MARKED
            return
        for ticket in group:
            ticket.verdict = Verdict.GO if ticket.message_id in marked else Verdict.GONE


# ------------------------------------------------------------------------ PostgreSQL


class TableJournal:
    """Hand-offs and answers in the message's own columns."""

    def __init__(self, db: Engine) -> None:
        self.db = db

    def mark(self, tickets, answers, at):
        ids = [message_id for message_id, _ in tickets]
        with self.db.begin() as conn:
            transitions.journal_outcomes(conn, answers, at)
            return transitions.hand_over(conn, ids, at)

    def entries(self, rows):
        return {
            r.id: Entry(
                handed_over=r.handed_over_at is not None,
                provider=r.provider,
                provider_message_id=r.provider_message_id,
                details=r.details,
                locale=r.locale,
                subject=r.subject,
                reason=r.reason,
            )
            for r in rows
        }

    def forget(self, ids):
        """Nothing to drop: the record overwrites the columns."""

    def close(self) -> None:
        """Nothing to close: the project's engine is the caller's."""


# ---------------------------------------------------------------------------- SQLite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS handoffs (
    message_id INTEGER PRIMARY KEY,
    lease TEXT NOT NULL,
    at TEXT NOT NULL,
    answer TEXT,
    released INTEGER NOT NULL DEFAULT 0
)
"""
# A hand-off lands where there is no entry, or where lease expiry released an earlier
# reservation of the message (never the one being marked: its dispatcher is too late).
_MARK = (
    "INSERT INTO handoffs (message_id, lease, at) VALUES {} "
    "ON CONFLICT (message_id) DO UPDATE SET lease = excluded.lease, at = excluded.at, "
    "answer = NULL, released = 0 "
    "WHERE handoffs.released = 1 AND handoffs.lease <> excluded.lease"
)
# After a mark that did not land everywhere: the entries it wrote carry its lease and time.
_MARKED = (
    "SELECT message_id, lease FROM handoffs WHERE message_id IN ({}) AND released = 0 AND at = ?"
)
# Lease expiry fences a reservation it releases, so its dispatcher cannot hand it over late
# (a fence of an earlier reservation moves to this one; a hand-off stays as it is).
_RELEASE = (
    "INSERT INTO handoffs (message_id, lease, at, released) VALUES (?, ?, ?, 1) "
    "ON CONFLICT (message_id) DO UPDATE SET lease = excluded.lease, at = excluded.at "
    "WHERE handoffs.released = 1"
)
_ANSWERS = (
    "UPDATE handoffs SET answer = v.column2 FROM (VALUES {}) AS v "
    "WHERE handoffs.message_id = v.column1"
)
_FORGET = "DELETE FROM handoffs WHERE message_id IN ({})"
_CHUNK = 500  # rows per statement, well within SQLite's limit on parameters
_ENTRIES = "SELECT message_id, answer, released FROM handoffs WHERE message_id IN ({})"


class FileJournal:
    """Hand-offs and answers in a SQLite file of their own, beside the project's."""

    def __init__(self, db: Engine, path: Path) -> None:
        self.db = db
        self.path = path
        self._lock = threading.Lock()  # one connection, used by one thread at a time
        self._connection: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            if not self.path.exists():  # like the database: its owner's only
                with contextlib.suppress(FileExistsError):
                    os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(_SCHEMA)
            self._connection = conn
        return self._connection

    def close(self) -> None:
        """Close the journal's connection (a later use opens it again)."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

    def mark(self, tickets, answers, at):
        """Each write is one statement, a transaction of its own: the answers are facts of
        their own, and each call into SQLite lets go of the interpreter lock, which a
        sending thread then waits to get back while the dispatcher's thread works."""
        with self._lock:
            conn = self._conn()
            for start in range(0, len(answers), _CHUNK):
                chunk = answers[start : start + _CHUNK]
                conn.execute(
                    _ANSWERS.format(",".join("(?, ?)" for _ in chunk)),
                    [v for a in chunk for v in (a["_id"], json.dumps(_answer(a), default=str))],
                )
            if not tickets:
                return set()
            stamp = sqlite_datetime(at)
            leases = {lease: sqlite_datetime(lease) for lease in {lease for _, lease in tickets}}
            insert = _MARK.format(",".join("(?, ?, ?)" for _ in tickets))
            params = [v for mid, lease in tickets for v in (mid, leases[lease], stamp)]
            if conn.execute(insert, params).rowcount == len(tickets):
                return {mid for mid, _ in tickets}  # every one landed: nothing to read back
            return self._marked(conn, tickets, stamp)

    @staticmethod
    def _marked(conn: sqlite3.Connection, tickets, stamp: str) -> set[int]:
        """Which of ``tickets`` the last mark wrote: those whose entry is now theirs."""
        ids = [mid for mid, _ in tickets]
        found = conn.execute(_MARKED.format(",".join("?" * len(ids))), [*ids, stamp])
        leases = {mid: sqlite_datetime(lease) for mid, lease in tickets}
        return {mid for mid, lease in found if leases[mid] == lease}

    def entries(self, rows):
        """Fence the reservations of ``rows`` not handed over, then read what each has."""
        rows = list(rows)
        # What the row itself says counts too (a hand-off written into the table).
        found = TableJournal(self.db).entries(rows)
        if not rows:
            return found
        leases = {r.id: sqlite_datetime(r.lease_until) for r in rows}
        stamp = sqlite_datetime(max(r.lease_until for r in rows))
        self._write(
            lambda conn: conn.executemany(
                _RELEASE, [(mid, lease, stamp) for mid, lease in leases.items()]
            )
        )
        ids = sorted(leases)
        with self._lock:
            conn = self._conn()
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                query = _ENTRIES.format(",".join("?" * len(chunk)))
                for message_id, answer, released in conn.execute(query, chunk):
                    if released:
                        continue  # fenced: it was never handed over
                    if not found[message_id].handed_over or answer:
                        found[message_id] = Entry(True, **(json.loads(answer) if answer else {}))
        return found

    def forget(self, ids):
        ids = list(ids)
        with self._lock:
            conn = self._conn()
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                conn.execute(_FORGET.format(",".join("?" * len(chunk))), chunk)


def _answer(answer: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k != "_id"}
