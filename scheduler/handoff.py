"""Hand-offs recorded as they happen, so a crash loses only the sends in flight.

Before a sending thread calls the provider, :meth:`HandOffs.enter` records that the message
is being handed over, together with the answers of the sends that finished since
(provider and message id, links, locale; or a refusal's reason). Where a record is a
transaction (PostgreSQL), threads arriving while one is being written wait and go in the
next together (a group commit); where it is a line appended to a file (SQLite), each
thread writes its own. A message is handed over at most once per reservation: only the
dispatcher whose mark lands sends it.

Where the record goes depends on the database:

* **PostgreSQL** (:class:`TableJournal`): the message's own ``handed_over_at`` and outcome
  columns (:func:`campaigns.transitions.hand_over_journalled`), in one statement; rows are
  locked one by one, so this never waits for another dispatcher's reservation.
* **SQLite** (:class:`FileJournal`): append-only files in a directory beside the
  project's database (``<database>.handoffs/``), one set per dispatcher. The project's
  database has a single writer, and a hand-off written there would wait for every
  reservation and record of the batch before; a line appended to a file of one's own costs
  a few microseconds. Every dispatcher of a SQLite project runs on the machine that holds
  the database, so they all see the same files.

The file journal
----------------

Each dispatcher appends to files of its own (``<pid>-<random>.<n>``), in lines:

* ``M <id> <lease>`` — the message, reserved until ``<lease>`` (microseconds since 1970:
  the reservation's key), is being handed over; written before the provider is called;
* ``A <id> <lease> <json>`` — what the provider answered (acceptance or refusal), written
  with the next mark (or never, if the batch is recorded first).

A write is one ``write(2)`` on a file opened for appending, without ``fsync``: what a
process wrote is in the page cache, which outlives the process (SIGKILL, an exception); a
crash of the machine itself is not covered, as it is not for the database's own
``synchronous=NORMAL``. A line cut short by a kill has no newline and does not count (a
mark that never completed was never followed by a provider call). Once a batch is
recorded its lines are no longer needed: a file that holds only recorded messages'
lines is emptied or removed; a dispatcher starts a new file once its current one is
large, so that the old one can go once its batches are recorded.

**Lease expiry** reads every dispatcher's files for the messages whose lease ran out: a
message with a mark for its reservation was handed over (settled by its answer, or
``unknown`` without one); one without was not, and goes back to ``planned``. Files whose
dispatcher is gone are removed once every lease they name has been settled.

**Exclusion.** A dispatcher whose lease ran out may still be alive (a stalled process,
a slow provider): lease expiry must not release a message it is about to hand over. So
expiry writes a *fence* (``F <id> <lease>``, into the shared file ``fences``) for every
message it releases, and the two steps are serialised by a lock on that file
(``flock``): a dispatcher holds it shared while it checks the fences and writes its marks;
expiry holds it exclusively while it reads the marks and writes the fences. Whichever
comes first wins: a mark written before is found (``unknown`` or settled by its answer), a
mark attempted after meets the fence and is not written (the message is not sent; it went
back to ``planned`` and is another reservation's now). This holds on any clock, simulated
or not. A dispatcher holds a shared lock on each of its own files from before its first
reservation until it closes, which is how the others tell a live dispatcher's files from
those of one that is gone; fences are kept until a dispatcher opens its journal finding
no other alive (none can hold a fenced reservation then).
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy.engine import Connection, Engine

from campaigns import transitions

log = logging.getLogger(__name__)
T = TypeVar("T")
# An answer as queued for the journal: the outcome's columns (``_id`` naming the
# message) and the lease of the reservation it answers.
Answer = tuple[dict[str, Any], datetime]


class Verdict(enum.Enum):
    """What :meth:`HandOffs.enter` decided for one message."""

    GO = "go"  # marked: send it now
    WITHDRAWN = "withdrawn"  # consent or suppression changed: skip it (see ``reason``)
    GONE = "gone"  # no longer this sender's (lease ran out, another dispatcher has it)
    NOT_MARKED = "not_marked"  # the journal failed: not sent, back to planned


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

    grouped: bool  # whether a write costs enough that threads should share one
    threads: int  # the sending threads a dispatcher runs by default (``dispatch.workers``)

    def open(self) -> None:
        """Be ready before this dispatcher reserves anything."""
        ...

    def mark(
        self, tickets: list[tuple[int, datetime]], answers: list[Answer], at: datetime
    ) -> set[int]:
        """Journal ``answers``, mark ``tickets`` (message id, lease); return the marked ids."""
        ...

    def entries(self, rows: Iterable[Any]) -> dict[int, Entry]:
        """What was journalled for these ``sending`` rows whose lease ran out; releases
        (fences) those not handed over."""
        ...

    def settled(self, now: datetime) -> None:
        """Lease expiry up to ``now`` is committed: what only it needed may go."""
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
    group: list[_Ticket] | None = None  # set when this thread is to write these
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
        self._answers: list[Answer] = []
        self._busy = False  # a group is being written

    def enter(self, message_id: int, lease: datetime) -> Verdict:
        """Block until the hand-off of ``message_id`` (reserved until ``lease``) is recorded
        or refused.

        One thread at a time writes a group; the threads arriving meanwhile wait, each on a
        lock of its own, and are woken only when their own group is decided (or, the first
        of them, to write the waiting ones as the next group): a wake-up costs a waiting
        thread the interpreter lock, and waking every waiter after every write had cost
        more than the writes. Two writers at once made more and slower marks: each round
        trip also waits for the interpreter lock, and more of them wait longer.
        """
        if not self.journal.grouped:
            return self._direct(message_id, lease)
        ticket = _Ticket(message_id, lease)
        with self._lock:
            if not self._busy:
                self._busy = True
                ticket.group = [*self._waiting, ticket]
                self._waiting = []
            else:
                self._waiting.append(ticket)
        if ticket.group is None:
            ticket.wake.acquire()  # released when decided, or to write the next group
        if ticket.group is not None:
            self._lead(ticket.group)
        assert ticket.verdict is not None
        return ticket.verdict

    def _direct(self, message_id: int, lease: datetime) -> Verdict:
        """A journal whose write takes microseconds: each thread writes its own mark, with
        the answers queued since; there is no group worth waiting for."""
        with self._lock:
            answers, self._answers = self._answers, []
        try:
            marked = self.journal.mark([(message_id, lease)], answers, self._now())
        except Exception:  # noqa: BLE001 - not marked means not sent; the batch goes on
            log.exception("hand-off of message %s not recorded; it is not sent", message_id)
            with self._lock:
                self._answers[:0] = answers  # for the next write
            return Verdict.NOT_MARKED
        return Verdict.GO if message_id in marked else Verdict.GONE

    def _lead(self, group: list[_Ticket]) -> None:
        """Write ``group``, then wake it and hand the writing on to the tickets waiting."""
        with self._lock:
            answers, self._answers = self._answers, []
        try:
            self._commit(group, answers)
        finally:
            with self._lock:
                following = self._waiting[0] if self._waiting else None
                if following is None:
                    self._busy = False
                else:  # the writing passes to the waiting tickets, as one group
                    following.group, self._waiting = self._waiting, []
            for ticket in group:
                if ticket.verdict is None:  # only an interrupt gets here: not sent
                    ticket.verdict = Verdict.NOT_MARKED
                ticket.wake.release()
            if following is not None:
                following.wake.release()

    def journal_answer(self, answer: dict[str, Any], lease: datetime) -> None:
        """Queue a provider's answer (``_id`` and outcome columns) to the reservation that
        runs until ``lease``, for the next commit."""
        with self._lock:
            self._answers.append((answer, lease))

    def _commit(self, group: list[_Ticket], answers: list[Answer]) -> None:
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
    """Hand-offs and answers in the message's own columns.

    A mark is one statement (:func:`campaigns.transitions.hand_over_journalled`) on a
    connection of the journal's own, in autocommit: one round trip to the server, where a
    transaction checked out of the pool took six (the pool's ping, BEGIN, a setting, the
    two updates, COMMIT). The sending threads wait for each mark in turn, and each round
    trip also waits for the interpreter lock on its way back.
    """

    grouped = True  # a statement each
    # Threads ready together share a mark: more of them, fewer and larger marks. A mark of
    # 16 messages costs the server little more than one of 4 (by key), and each round trip
    # waits for the interpreter lock on its way back. One dispatcher, 5,000 e-mails: 0.64x
    # of SQLite's rate with 8 threads, 0.79x with 32 (bench_scale, render process).
    threads = 32

    def __init__(self, db: Engine) -> None:
        self.db = db
        self._idle: list[Connection] = []  # kept between marks (one, as marks take turns)
        self._lock = threading.Lock()

    def open(self) -> None:
        """Nothing to open: the table is there (connections come with the first marks)."""

    def mark(self, tickets, answers, at):
        ids = [message_id for message_id, _ in tickets]
        outcomes = [answer for answer, _ in answers]
        if {row["_id"] for row in outcomes} & set(ids):  # a row changes once per statement
            return self._mark_in_transaction(ids, outcomes, at)
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self.db.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            # Committed without waiting for the server's disk, as the SQLite journal is
            # written without fsync: a dispatcher that dies loses nothing (the server has
            # the commit); only a crash of the database server itself may forget the last
            # fraction of a second of marks. Waiting for the disk cost 3-4 ms a mark here.
            marked = transitions.hand_over_journalled(conn, ids, outcomes, at, wait_for_disk=False)
        except Exception:
            with contextlib.suppress(Exception):  # the retry, if any, takes a fresh one
                conn.invalidate()
                conn.close()
            raise
        with self._lock:
            self._idle.append(conn)
        return marked

    def _mark_in_transaction(self, ids, outcomes, at):
        with self.db.begin() as conn:
            conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            transitions.journal_outcomes(conn, outcomes, at)
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

    def settled(self, now):
        """Nothing to drop: expiry rewrote the columns."""

    def forget(self, ids):
        """Nothing to drop: the record overwrites the columns."""

    def close(self) -> None:
        """Give the journal's connections back to the project's engine."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


# ---------------------------------------------------------------------------- SQLite

# A file this large is left for a new one (and removed once its batches are recorded).
SEGMENT_BYTES = 1 << 20
FENCES = "fences"
# A file being created is named with a leading dot until it is locked; one left behind by
# a process that died in between is removed when it is this old.
STALE_TEMPORARY = 60.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC


@lru_cache(maxsize=64)
def lease_key(lease: datetime) -> int:
    """A reservation's lease as whole microseconds since 1970 (UTC): its key in the files.
    A tick's reservations share one lease, so this is computed about once a tick."""
    if lease.tzinfo is None:
        lease = lease.replace(tzinfo=UTC)
    return (lease - _EPOCH) // _MICROSECOND


@dataclass
class _Segment:
    """One of this dispatcher's files: where it is, and the messages whose lines in it
    are still needed (not yet recorded)."""

    path: Path
    fd: int
    size: int = 0
    pending: set[int] = field(default_factory=set)


@dataclass
class _Found:
    """What the files hold for the reservations lease expiry settles."""

    marked: set[tuple[int, int]] = field(default_factory=set)
    answers: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    dead: list[tuple[Path, int]] = field(default_factory=list)  # and the latest lease named


class FileJournal:
    """Hand-offs and answers in append-only files beside the project's database."""

    grouped = False  # a write each: microseconds
    threads = 8  # each writes its own mark: more threads only wait for the interpreter lock

    def __init__(self, db: Engine, directory: Path) -> None:
        self.db = db
        self.directory = directory
        self._lock = threading.Lock()  # this journal's files, used by one thread at a time
        self._fences_fd: int | None = None
        self._name: str | None = None  # this dispatcher's files' prefix, while open
        self._serial = 0
        self._segments: list[_Segment] = []  # the last one is written
        self._fenced: set[tuple[int, int]] = set()
        self._fences_read = 0  # bytes of ``fences`` already in ``_fenced``
        self._dead: list[tuple[Path, int]] = []  # found by the last expiry, to remove once settled
        self._broken: OSError | None = None

    # -- opening and closing -----------------------------------------------------

    def open(self) -> None:
        """Create this dispatcher's first file (locked: it is alive) before it reserves
        anything; remove what dispatchers gone before left empty, and the fences, when no
        other dispatcher is alive."""
        with self._lock:
            self._open_segments(tidy=True)

    def _fences(self) -> int:
        if self._fences_fd is None:
            with contextlib.suppress(FileExistsError):
                os.mkdir(self.directory, 0o700)  # like the database: its owner's only
            self._fences_fd = os.open(
                self.directory / FENCES, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600
            )
        return self._fences_fd

    def _open_segments(self, *, tidy: bool) -> None:
        if self._segments:
            return
        fences = self._fences()
        self._name = f"{os.getpid()}-{secrets.token_hex(6)}"
        self._segments.append(self._new_segment())
        self._fenced.clear()
        self._fences_read = 0
        self._broken = None
        if tidy:
            with _flock(fences, fcntl.LOCK_EX):
                if not self._tidy():
                    os.ftruncate(fences, 0)

    def _new_segment(self) -> _Segment:
        """A new file, locked before anyone can see it under its name."""
        name = f"{self._name}.{self._serial}"
        self._serial += 1
        temporary = self.directory / f".{name}"
        fd = os.open(temporary, _OPEN_FLAGS, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            os.rename(temporary, self.directory / name)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        return _Segment(self.directory / name, fd)

    def _tidy(self) -> bool:
        """Remove the empty files of dispatchers that are gone; whether another is alive."""
        alive = False
        for name, path in self._files(temporaries=True):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                if not _dead(fd):
                    alive = True
                    continue
                stat = os.fstat(fd)
                if name.startswith(".") and time.time() - stat.st_mtime < STALE_TEMPORARY:
                    alive = True  # perhaps being created this moment
                    continue
                if stat.st_size == 0:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
            finally:
                os.close(fd)
        return alive

    def _files(self, *, temporaries: bool = False) -> Iterator[tuple[str, Path]]:
        """Other dispatchers' files (and, if asked, files being created)."""
        for name in os.listdir(self.directory):
            if name == FENCES or (self._name is not None and name.startswith(f"{self._name}.")):
                continue
            if name.startswith(".") and not temporaries:
                continue
            yield name, self.directory / name

    def close(self) -> None:
        """Close this dispatcher's files, removing those no unrecorded message needs (a
        later use opens new ones)."""
        with self._lock:
            for segment in self._segments:
                if not segment.pending:
                    with contextlib.suppress(OSError):
                        os.unlink(segment.path)
                os.close(segment.fd)
            self._segments = []
            self._name = None
            if self._fences_fd is not None:
                os.close(self._fences_fd)
                self._fences_fd = None

    # -- the dispatcher's side -----------------------------------------------------

    def mark(self, tickets, answers, at):
        """Append the queued answers and the marks of ``tickets`` not fenced, in one write,
        holding the fences' lock shared."""
        with self._lock:
            if not self._segments:
                self._open_segments(tidy=False)
            if self._broken is not None:
                raise self._broken
            segment = self._segments[-1]
            lines = []
            for answer, lease in answers:
                message_id = answer["_id"]
                if message_id in segment.pending or self._pending(message_id):
                    # (Of a batch recorded meanwhile, the answers are in the database.)
                    line = b"A %d %d %s\n" % (message_id, lease_key(lease), _encode(answer))
                    lines.append(line)
                    segment.pending.add(message_id)
            marked: set[int] = set()
            fences = self._fences_fd
            assert fences is not None
            fcntl.flock(fences, fcntl.LOCK_SH)
            try:
                if os.fstat(fences).st_size != self._fences_read:
                    self._read_fences(fences)
                for message_id, lease in tickets:
                    key = (message_id, lease_key(lease))
                    if key not in self._fenced:
                        lines.append(b"M %d %d\n" % key)
                        marked.add(message_id)
                if lines:
                    self._append(segment, b"".join(lines))
            finally:
                fcntl.flock(fences, fcntl.LOCK_UN)
            segment.pending |= marked
            return marked

    def _pending(self, message_id: int) -> bool:
        return any(message_id in segment.pending for segment in self._segments)

    def _read_fences(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        if size == self._fences_read:
            return
        if size < self._fences_read:  # emptied (not while another dispatcher lives)
            self._fenced.clear()
            self._fences_read = 0
        data = os.pread(fd, size - self._fences_read, self._fences_read)
        whole = data.rfind(b"\n") + 1
        for line in data[:whole].split(b"\n"):
            key = _parse_key(line, b"F")
            if key is not None:
                self._fenced.add(key)
        self._fences_read += whole

    def _append(self, segment: _Segment, data: bytes) -> None:
        """One append to the current file; a failure takes back what it wrote."""
        try:
            written = os.write(segment.fd, data)
            while written < len(data):  # a short write (a full disk) or an interrupt
                written += os.write(segment.fd, data[written:])
        except OSError as exc:
            try:
                os.ftruncate(segment.fd, segment.size)
            except OSError:
                self._broken = exc  # a partial line would spoil the next: no more marks
            raise
        segment.size += len(data)
        if segment.size >= SEGMENT_BYTES:
            self._segments.append(self._new_segment())

    def forget(self, ids):
        """The batch is recorded: a file no unrecorded message needs is removed (an older
        one) or emptied (the current one)."""
        with self._lock:
            if not self._segments:
                return
            for segment in self._segments:
                segment.pending.difference_update(ids)
            *older, current = self._segments
            for segment in older:
                if not segment.pending:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(segment.path)
                    os.close(segment.fd)
            self._segments = [s for s in older if s.pending] + [current]
            if not current.pending and current.size and self._fences_fd is not None:
                with _flock(self._fences_fd, fcntl.LOCK_SH):  # never while expiry reads
                    os.ftruncate(current.fd, 0)
                current.size = 0

    # -- lease expiry's side ------------------------------------------------------

    def entries(self, rows):
        """Read every dispatcher's files for these reservations and fence those not
        marked, holding the fences' lock exclusively."""
        rows = list(rows)
        # What the row itself says counts too (a hand-off written into the table).
        found = TableJournal(self.db).entries(rows)
        if not rows:
            return found
        wanted = {(r.id, lease_key(r.lease_until)) for r in rows}
        with self._lock:
            fences = self._fences()
            with _flock(fences, fcntl.LOCK_EX):
                seen = self._scan(wanted)
                released = sorted(wanted - seen.marked)
                if released:
                    self._fence(fences, released)
        self._dead = seen.dead
        for key in seen.marked:
            answer = seen.answers.get(key)
            if not found[key[0]].handed_over or answer:
                found[key[0]] = Entry(True, **(answer or {}))
        return found

    def _scan(self, wanted: set[tuple[int, int]]) -> _Found:
        found = _Found()
        own = [s.path for s in self._segments]
        for path in [*own, *(p for _, p in self._files())]:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # recorded and removed meanwhile
            try:
                dead = path not in own and _dead(fd)
                data = _read_all(fd)
            finally:
                os.close(fd)
            latest = _collect(data, wanted, found)
            if dead:
                found.dead.append((path, latest))
        return found

    def _fence(self, fd: int, keys: list[tuple[int, int]]) -> None:
        size = os.fstat(fd).st_size
        start = b"\n" if size and os.pread(fd, 1, size - 1) != b"\n" else b""  # a cut line
        data = start + b"".join(b"F %d %d\n" % key for key in keys)
        written = os.write(fd, data)
        while written < len(data):
            written += os.write(fd, data[written:])

    def settled(self, now):
        """Remove the files of dispatchers that are gone whose every lease ran out by
        ``now``: the expiry just committed settled what they held."""
        limit = lease_key(now)
        for path, latest in self._dead:
            if latest <= limit:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        self._dead = []


@contextlib.contextmanager
def _flock(fd: int, how: int) -> Iterator[None]:
    fcntl.flock(fd, how)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _dead(fd: int) -> bool:
    """Whether the dispatcher that wrote this file is gone (nobody holds its lock)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True  # the lock goes with the descriptor


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _collect(data: bytes, wanted: set[tuple[int, int]], found: _Found) -> int:
    """Gather one file's marks and answers for ``wanted``; returns the latest lease named
    (-1 for none). A last line without its newline was cut short: it does not count."""
    latest = -1
    for line in data[: data.rfind(b"\n") + 1].split(b"\n"):
        if line.startswith(b"M "):
            key = _parse_key(line, b"M")
            if key is None:
                continue
            latest = max(latest, key[1])
            if key in wanted:
                found.marked.add(key)
        elif line.startswith(b"A "):
            head = line.split(b" ", 3)
            if len(head) != 4 or not (head[1].isdigit() and head[2].isdigit()):
                continue
            key = (int(head[1]), int(head[2]))
            latest = max(latest, key[1])
            if key in wanted:
                with contextlib.suppress(ValueError):
                    answer = json.loads(head[3])
                    if isinstance(answer, dict):
                        answer.pop("_id", None)
                        found.answers[key] = answer
    return latest


def _parse_key(line: bytes, kind: bytes) -> tuple[int, int] | None:
    parts = line.split(b" ")
    if len(parts) != 3 or parts[0] != kind or not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    return int(parts[1]), int(parts[2])


_ENCODER = json.JSONEncoder(default=str, separators=(",", ":"))


def _encode(answer: Mapping[str, Any]) -> bytes:
    """An answer as one line of JSON (newlines in it are escaped; ASCII only)."""
    return _ENCODER.encode(answer).encode()
