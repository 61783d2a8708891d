"""The dispatcher: claim due messages, decide, render, send, record.

One batch goes through three phases (DESIGN.md, "Reserve, then send, then record"):

1. **reserve** — in one short transaction: claim due messages (``FOR UPDATE SKIP LOCKED``
   and a per-customer advisory lock on PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite), apply the
   contact policy counting what is already ``sending``/``sent``/``unknown``, and mark each
   message ``sending``, deferred (new ``due_at``) or skipped. Commit.
2. **send** — outside any transaction, concurrently, under each channel's rate limit.
   Just before each provider call, consent and suppression are checked once more and the
   message's hand-off is recorded (:mod:`scheduler.handoff`).
3. **record** — one transaction writes every result, through the transition table
   (:mod:`campaigns.transitions`).

A message whose dispatcher died between 1 and 3 stays ``sending``; when its lease runs out
it goes back to ``planned`` if it was never handed over, becomes ``sent`` if the provider's
answer was journalled, and otherwise ``unknown``, never to be sent again automatically.
A batch reserves no more of a rate-limited channel's messages than the rate sends in half
a lease, so waiting on the rate limiter does not outlast the lease.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import random
import threading
import time
import zlib
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from campaigns import transitions
from campaigns.bulk import executemany, unjournaled
from campaigns.bundling import BUNDLED
from campaigns.conditions import condition_names
from campaigns.engine import (
    Engine as JourneyEngine,
)
from campaigns.engine import (
    decisions_t,
    events_t,
    journeys_t,
    load_customers,
    messages_t,
)
from campaigns.experiments import HOLDOUT, SEND, Assignment, assign
from campaigns.heap import long_lived_frozen
from campaigns.idlists import id_in
from campaigns.importing import insert_ignore_statement
from campaigns.journeys import evaluate
from campaigns.models import (
    COUNTING_STATUSES,
    FAILED,
    PLANNED,
    SENDING,
    SENT,
    SKIPPED,
    UNKNOWN,
    Suppression,
    UTCDateTime,
    reading,
)
from campaigns.policy import Allow, Candidate, Contact, ContactPolicy, Defer, Recipient, Skip
from campaigns.timewindows import own_region
from campaigns.value import rating_of
from channels import (
    AmbiguousChannelError,
    Channel,
    ChannelError,
    OutgoingMessage,
    PermanentChannelError,
    RecipientOptedOut,
    SendResult,
    TransientChannelError,
)
from channels.ratelimit import RateLimiter
from channels.retry import backoff_delay
from scheduler.bundling import BatchBundles, candidates_query
from scheduler.clock import Clock
from scheduler.context import ContextLoader
from scheduler.handoff import Entry, HandOffs, Verdict, journal_for
from scheduler.parts import ContextParts, LinkSettings
from scheduler.rendering import PendingRender, RenderFailure, RenderJob, RenderPool, render
from templates import TemplateError, TemplateRenderer

log = logging.getLogger(__name__)
suppressions_t = Suppression.__table__
HELD = timedelta(days=3650)  # "until the complaint is resolved": resolving re-dues the message
T = TypeVar("T")
# Events applied per transaction. Rows planned together share index pages, and a commit
# writes each dirty page once: 5,000 applied 100,000 purchases a fifth faster than 2,000,
# and still hold SQLite's write lock for only a few seconds.
EVENTS_BATCH = 5000
# A dropped connection or a restarting server: retried this often, backing off in between.
DB_ATTEMPTS = 6
DB_BACKOFF = 0.2
# A batch reserves at most what a rate-limited channel sends in this share of the lease.
LEASE_SHARE = 0.5


def is_connection_fault(exc: BaseException) -> bool:
    """A failure the same transaction may succeed after: a lost connection, a restart."""
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


@dataclass(frozen=True, kw_only=True)
class DispatchConfig:
    batch_size: int = 500
    lease: timedelta = timedelta(minutes=5)
    max_attempts: int = 5
    workers: int = 8
    public_url: str = "http://127.0.0.1:8000"
    secret_key: str = "change-me"
    default_locale: str = "de"
    rates: Mapping[str, str | None] = field(default_factory=dict)
    short_links: bool = True  # SMS links through <public_url>/l/... (templates.links)


@dataclass
class DispatchStats:
    claimed: int = 0
    sent: int = 0
    deferred: int = 0
    skipped: int = 0
    failed: int = 0
    retried: int = 0
    unknown: int = 0
    events: int = 0
    planned: int = 0  # follow-up messages of enrolments whose previous message ended

    def add(self, other: DispatchStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class _Reserved:
    row: Any
    assignment: Assignment = Assignment()
    parts: ContextParts | None = None
    outgoing: OutgoingMessage | None = None
    locale: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    result: SendResult | None = None
    answer: dict[str, Any] | None = None  # the acceptance's columns, as journalled
    error: Exception | None = None
    lease: datetime | None = None  # until when it is reserved: the reservation's token
    verdict: Verdict | None = None  # the hand-off's, once the message reached it
    skip_reason: str | None = None  # why it was withdrawn at the hand-off
    queued: bool = False  # counted as waiting for its channel's rate limiter
    batch: _Batch | None = None
    at: datetime | None = None  # decided at this instant, not the tick's (a simulation)


class _Outcome(enum.Enum):
    SEND = "send"
    BUNDLED = "bundled"  # carried by another message of the batch
    DEFER = "defer"
    SKIP = "skip"


@dataclass(slots=True)
class _Decided:
    """One message decided in a reservation, not yet written."""

    kind: _Outcome
    row: Any
    at: datetime  # the instant it was decided at
    reason: str | None = None  # of a deferral or a skip
    until: datetime | None = None  # of a deferral
    item: _Reserved | None = None  # of a send
    carrier: Any = None  # of a bundled message: the row that carries it


class _StepFacts(NamedTuple):
    """What deciding a message asks of its (journey, version, step), looked up once."""

    journey: Any  # the version's definition, None when it is gone
    window: Any  # the step's own send window
    topic: str | None  # the journey's consent topic
    condition: str | None  # the step's send-time condition
    min_gap: timedelta
    assigns: bool  # whether a holdout or a variant can apply: else every message is SEND


@dataclass
class _Batch:
    """What the messages of one batch share while they are sent."""

    ids: list[int]
    marketing: bool = True  # whether any of them is marketing
    withdrawn: dict[int, str] | None = None  # the last check, read once before the sends
    lock: threading.Lock = field(default_factory=threading.Lock)


class MessageError(Exception):
    """Something unexpected while rendering or sending one message: it fails alone, with
    the reason ``error:<kind>`` (the exception's type) and the details in its history."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind

    @classmethod
    def of(cls, exc: BaseException) -> MessageError:
        return cls(type(exc).__name__, f"{type(exc).__name__}: {exc}")


class Dispatcher:
    """Moves due messages through policy, rendering and delivery."""

    def __init__(
        self,
        *,
        db: Engine,
        clock: Clock,
        policy: ContactPolicy,
        renderer: TemplateRenderer,
        channels: Mapping[str, Channel],
        journeys: JourneyEngine,
        config: DispatchConfig,
        rng: random.Random | None = None,
        render_pool: RenderPool | None = None,
    ) -> None:
        """``render_pool``: render in those processes rather than in the sending threads."""
        self.db = db
        self.clock = clock
        self.policy = policy
        self.renderer = renderer
        self.render_pool = render_pool
        self.channels = dict(channels)
        self.journeys = journeys
        self.config = config
        self.rng = rng or random.Random()
        self._limiters = {k: RateLimiter.parse(v) for k, v in config.rates.items() if v}
        self._links = LinkSettings(config.public_url, config.secret_key, config.short_links)
        self._pool = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="send")
        self._postgres = db.dialect.name == "postgresql"
        self._contended = 0  # claims in a row left to another dispatcher (PostgreSQL)
        self._stop = threading.Event()
        self._handoffs = HandOffs(journal=journal_for(db), now=clock.now, retry=self._with_retry)
        self._queued: Counter[str] = Counter()  # reserved, not yet past the rate limiter
        self._queued_lock = threading.Lock()
        # Per (journey, version, step): a version's definition never changes once stored.
        self._steps: dict[tuple[str, int, str], _StepFacts] = {}
        # Called after each recorded batch (heartbeats during a long tick).
        self.on_batch: Callable[[DispatchStats], None] | None = None

    def close(self) -> None:
        """Wait for the sends in flight, then stop the render processes."""
        self._pool.shutdown(wait=True)
        self._handoffs.journal.close()
        if self.render_pool is not None:
            self.render_pool.close()

    # -- the tick ------------------------------------------------------------------

    @long_lived_frozen()
    def tick(
        self,
        *,
        max_batches: int | None = None,
        housekeeping: bool = True,
        apply_events: bool = True,
        expire_leases: bool = True,
    ) -> DispatchStats:
        """Apply due events, expire old leases, then dispatch until nothing is due now.

        ``housekeeping=False`` only dispatches: with several dispatchers on one database,
        one of them (the leader) applies events and expires leases for all.
        ``apply_events=False`` and ``expire_leases=False`` skip those steps, for a caller
        that knows there is nothing for them (the simulation, alone on its clock).
        """
        stats = DispatchStats()
        now = self.clock.now()
        if housekeeping:
            if apply_events:
                stats.events += self.apply_due_events(now)
            if expire_leases:
                stats.unknown += self.expire_leases(now)
        # Pipelined: while one batch renders and sends on the pool, the next is reserved.
        # Its policy decisions already count the first batch, which is `sending` by then.
        # The next batch is started before the previous one is recorded, so render
        # processes keep working while this process records.
        in_flight: deque[tuple[list[_Reserved], list[Future[None]]]] = deque()
        batches = 0
        self._contended = 0  # counted per tick: a row held elsewhere ends this tick only
        drained = False  # a claim short of a full batch took everything due by now
        try:
            while True:
                reserved: list[_Reserved] = []
                claimed = 0
                if not (drained or self.stopping) and (
                    max_batches is None or batches < max_batches
                ):
                    if self._contended:  # let the other claim's transaction end first
                        time.sleep(CONTENDED_PAUSE * min(self._contended, CONTENDED_CLAIMS))
                    reserved, claimed = self._with_retry(
                        lambda: self._reserve_tx(now, stats), "reserve"
                    )
                    batches += 1
                    # A contended claim is never the last: what it left is claimed again,
                    # however short it was (PostgreSQL; see _claim_skip_locked).
                    drained = claimed < self.config.batch_size and not self._contended
                if reserved:
                    in_flight.append((reserved, self._start(reserved)))
                while len(in_flight) > (1 if reserved else 0):
                    self._finish(*in_flight.popleft(), now, stats)
                    if self.on_batch is not None:
                        self.on_batch(stats)
                if not reserved and not claimed:
                    # A full batch that was all deferrals or skips is no reason to stop:
                    # only an empty or a short claim means nothing more is due. A message
                    # planned while recording that is already due waits for the next tick.
                    return stats
        finally:
            # A reservation that failed for good must not strand the batches already sent.
            while in_flight:
                self._finish(*in_flight.popleft(), now, stats)

    def request_stop(self) -> None:
        """Stop claiming; the batch in flight is still sent and recorded (SIGTERM)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @long_lived_frozen()
    def apply_due_events(self, now: datetime) -> int:
        """Apply every event whose time has come; returns how many."""
        applied = 0

        def batches() -> None:  # each batch in a transaction of its own
            nonlocal applied
            due = self.journeys.apply_all_due_in(self.db, now, limit=EVENTS_BATCH)
            with contextlib.closing(due):
                for stats in due:
                    applied += stats.events
                    if self.stopping:
                        return

        self._with_retry(batches, "apply events")
        return applied

    def _with_retry(self, work: Callable[[], T], what: str) -> T:
        """Run one transaction, again after a connection fault, a bounded number of times."""
        for attempt in range(1, DB_ATTEMPTS + 1):
            try:
                return work()
            except DBAPIError as exc:
                if not is_connection_fault(exc) or attempt == DB_ATTEMPTS:
                    raise
                delay = DB_BACKOFF * 2 ** (attempt - 1)
                log.warning("%s: database fault (%s), retrying in %.1fs", what, exc.orig, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def expire_leases(self, now: datetime) -> int:
        """Settle ``sending`` messages whose lease has run out; returns how many became
        ``unknown``.

        Never handed over: back to ``planned``, sent later as if nothing happened. Handed
        over with the provider's answer journalled: ``sent``. Handed over without one:
        ``unknown`` — maybe sent, so never re-sent.
        """
        return self._with_retry(lambda: self._expire_leases_tx(now), "expire leases")

    def _expire_leases_tx(self, now: datetime) -> int:
        with self.db.begin() as conn:
            rows = conn.execute(LEASE_EXPIRED, {"now": now}).all()
            if not rows:
                return 0
            entries = self._handoffs.journal.entries(rows)
            left, accepted, retried, refused, doubt = _settle(rows, entries)
            outcome = transitions.OUTCOME_COLUMNS
            transitions.move(
                conn,
                PLANNED,
                [_update(r.id, reason="lease_expired", lease_until=None) for r in left]
                + [_update(r.id, due_at=now, lease_until=None, handed_over_at=None,
                           reason=entries[r.id].reason, attempts=r.attempts + 1) for r in retried],
                now,
            )  # fmt: skip
            transitions.move(
                conn,
                SENT,
                [_update(r.id, reason=None, lease_until=None, attempts=r.attempts + 1,
                         handed_over_at=None, **_accepted(entries[r.id])) for r in accepted],
                now,
                always=outcome,
            )  # fmt: skip
            transitions.move(
                conn,
                FAILED,
                [_update(r.id, reason=entries[r.id].reason, sent_at=None, lease_until=None,
                         handed_over_at=None, attempts=r.attempts + 1) for r in refused],
                now,
                always=outcome,
            )  # fmt: skip
            transitions.move(
                conn,
                UNKNOWN,
                [_update(r.id, reason="lease_expired", lease_until=None, handed_over_at=None,
                         attempts=r.attempts + 1) for r in doubt],
                now,
                always=outcome,
            )  # fmt: skip
            _decide_rows(
                conn,
                [(r.id, "released", "lease_expired", None, None, None) for r in left]
                + [
                    (r.id, "retry", entries[r.id].reason, r.due_at, now, "lease_expired")
                    for r in retried
                ]
                + [(r.id, "sent", None, None, None, entries[r.id].provider) for r in accepted]
                + [
                    (r.id, "failed", entries[r.id].reason, None, None, "lease_expired")
                    for r in refused
                ]
                + [(r.id, "unknown", "lease_expired", None, None, None) for r in doubt],
                now,
            )
            self._plan_next(conn, [*accepted, *refused, *doubt], now)
        self._forget([r.id for r in [*accepted, *retried, *refused, *doubt]])  # fences stay
        try:
            self._handoffs.journal.settled(now)
        except OSError:  # what dead dispatchers left stays until the next expiry
            log.warning("hand-off journal: settled files not removed", exc_info=True)
        return len(doubt)

    def next_due(self) -> datetime | None:
        """The earliest time anything is due: a planned message or an unapplied event."""
        return min((t for t in self.upcoming()[:2] if t is not None), default=None)

    def upcoming(self) -> tuple[datetime | None, datetime | None, datetime | None]:
        """When the next planned message is due, the next unapplied event happens and the
        earliest lease of a message being sent runs out (each None when there is none)."""
        with reading(self.db) as conn:
            message_at, event_at, lease_at = conn.execute(UPCOMING).one()
        return message_at, event_at, lease_at

    # -- one batch -----------------------------------------------------------------

    def dispatch_batch(self, now: datetime) -> DispatchStats:
        """Reserve, send and record one batch."""
        stats = DispatchStats()
        reserved, _ = self._with_retry(lambda: self._reserve_tx(now, stats), "reserve")
        if reserved:
            self._finish(reserved, self._start(reserved), now, stats)
        return stats

    def _reserve_tx(self, now: datetime, stats: DispatchStats) -> tuple[list[_Reserved], int]:
        """One reservation transaction: what to send, and how many due rows it claimed."""
        self._handoffs.journal.open()  # before anything is reserved: see scheduler.handoff
        with self.db.begin() as conn:
            reserved, claimed = self._reserve(conn, now, stats)
        for item in reserved:  # as MARK_SENDING wrote it
            item.lease = now + self.config.lease
        return reserved, claimed

    def _start(self, reserved: list[_Reserved]) -> list[Future[None]]:
        # Render and send each message on the pool, so rendering overlaps network waits;
        # with render processes, the chunks render there while this process goes on.
        jobs = [self._job(item) for item in reserved]
        batch = _Batch(
            [item.row.id for item in reserved],
            marketing=any(item.row.category == "marketing" for item in reserved),
        )
        for item in reserved:
            item.batch = batch
        self._enqueue(reserved)
        pending = self.render_pool.submit(jobs) if self.render_pool is not None else None
        waiting = pending or [None] * len(jobs)
        return [
            self._pool.submit(self._deliver, item, job, rendering)
            for item, job, rendering in zip(reserved, jobs, waiting, strict=True)
        ]

    def _finish(self, reserved, futures, now: datetime, stats: DispatchStats) -> None:
        for future in futures:
            future.result()
        # The sends happened: recording them is retried, never dropped. A retry writes only
        # what is not yet recorded, in case the failed attempt had committed after all.
        attempts = iter(range(DB_ATTEMPTS))

        def record() -> DispatchStats:
            first = next(attempts) == 0
            counted = DispatchStats()
            with self.db.begin() as conn:
                pending = reserved if first else _unrecorded(conn, reserved)
                self._record(conn, pending, now, counted)
            return counted

        stats.add(self._with_retry(record, "record"))
        # Not what another dispatcher handed over: its entry guards its send.
        self._forget([item.row.id for item in reserved if item.verdict is not Verdict.GONE])

    def _forget(self, ids: list[int]) -> None:
        """Recorded: the journal's entries are no longer needed (a failure only leaves
        them behind)."""
        try:
            self._handoffs.journal.forget(ids)
        except Exception:  # noqa: BLE001 - stale entries are harmless: keyed by their lease
            log.warning("hand-off journal not cleared", exc_info=True)

    def _claim(self, conn: Connection, now: datetime) -> tuple[list[Any], int]:
        """The due messages this batch decides, and how many due rows the claim saw.

        A batch takes whole customers: every due message of each customer it claims, so
        that priority decides among a customer's competing messages wherever the batch
        boundary falls and whichever dispatcher claims them; on SQLite, as many whole
        customers as fit in a batch. A claim that saw fewer rows than a batch took
        everything due.
        """
        if self._postgres:
            return self._claim_skip_locked(conn, now)
        limit = self.config.batch_size
        rows = as_claimed(conn.execute(CLAIM, {"now": now, "limit": limit}))
        if len(rows) < limit:  # everything due is in hand: no boundary to fall between
            return rows, len(rows)
        # The claim is the head of the due order: what these customers have beyond it
        # comes after its last row (read once, not the whole claim again).
        last = rows[-1]
        ids = sorted({r.customer_id for r in rows})
        after = {"ids": ids, "now": now, "due": last.due_at, "priority": last.priority}
        beyond = as_claimed(conn.execute(CUSTOMERS_DUE_AFTER, {**after, "id": last.id}))
        return _whole_customers([*rows, *beyond], limit), len(rows)

    def _claim_skip_locked(self, conn: Connection, now: datetime) -> tuple[list[Any], int]:
        """PostgreSQL: decide a customer only holding its advisory lock and every one of its
        due rows.

        A customer another dispatcher is deciding (its lock is taken), or one of whose due
        rows another has claimed, is left to a later batch: no dispatcher waits on another.
        A claim whose customers are all locked by others reports none seen, so the tick
        ends: those dispatchers decide them. A claim that holds a customer's lock but not all
        of its rows (another dispatcher claimed some at the same moment, then failed the
        lock) reports what it saw, so the tick claims again, however short the claim, after
        a pause in which the other transaction lets go, rather than end with the customer
        left by both (a ``run --once`` would leave it until the next run) — up to
        :data:`CONTENDED_CLAIMS` times in a row, so a row held for long elsewhere ends the
        tick instead of spinning on it.
        """
        rows = as_claimed(
            conn.execute(CLAIM_SKIP_LOCKED, {"now": now, "limit": self.config.batch_size})
        )
        keys: dict[int, list[str]] = defaultdict(list)  # two customers may share a key
        for cid in {r.customer_id for r in rows}:
            keys[_lock_key(cid)].append(cid)
        taken = conn.execute(TRY_LOCKS, {"keys": sorted(keys)}).scalars() if keys else []
        ids = sorted(cid for key in taken for cid in keys[key])
        if not ids:
            return [], 0
        # Read after the locks: what the lock's last holder decided is no longer planned.
        held = as_claimed(conn.execute(CUSTOMERS_DUE_SKIP_LOCKED, {"ids": ids, "now": now}))
        mine = {r.id for r in held}
        due = conn.execute(DUE_OF, {"ids": ids, "now": now})
        elsewhere = {cid for mid, cid in due if mid not in mine}
        kept = [r for r in held if r.customer_id not in elsewhere]
        # A customer left for its other rows is this dispatcher's to claim again (it holds
        # the lock; the other claim let go of its rows): the tick goes on, see tick().
        self._contended = 0 if kept and not elsewhere else self._contended + 1
        return kept, len(rows) if self._contended <= CONTENDED_CLAIMS else 0

    def _reserve(
        self, conn: Connection, now: datetime, stats: DispatchStats
    ) -> tuple[list[_Reserved], int]:
        rows, claimed = self._claim(conn, now)
        rows = self._within_rates(rows)
        if not rows:
            return [], claimed
        customer_ids = sorted({r.customer_id for r in rows})
        stats.claimed += len(rows)
        customers = load_customers(conn, customer_ids)
        suppressed = _suppressions(conn, customer_ids)
        history, latest = self._history(conn, customer_ids, now)
        bundles = self._bundles(conn, rows)
        contexts = ContextLoader(conn, [*rows, *bundles.outside], self.journeys.segments)
        decided = self._decide_batch(
            rows, lambda _cid: now, customers, suppressed, history, latest, bundles, contexts
        )
        sending: list[int] = []
        updates: list[dict[str, Any]] = []
        variants: list[dict[str, Any]] = []  # not a move: the message stays ``sending``
        decisions: list[tuple] = []
        reserved: list[_Reserved] = []
        skipped: list[Any] = []
        for outcome in decided:
            row = outcome.row
            if outcome.kind is _Outcome.SEND:
                sending.append(row.id)
                reserved.append(outcome.item)
                if outcome.item.assignment.variant is not None:
                    variants.append(_variant(row, outcome.item.assignment.variant))
            elif outcome.kind is _Outcome.BUNDLED:
                updates.append(_bundled(row, outcome.carrier))
                decisions.append((row.id, "skipped", BUNDLED, row.due_at, None, None))
                stats.skipped += 1
                skipped.append(row)
            elif outcome.kind is _Outcome.DEFER:
                updates.append(_update(row.id, due_at=outcome.until, reason=outcome.reason))
                decisions.append(
                    (row.id, "deferred", outcome.reason, row.due_at, outcome.until, None)
                )
                stats.deferred += 1
            else:
                updates.append(_update(row.id, status=SKIPPED, reason=outcome.reason))
                decisions.append((row.id, "skipped", outcome.reason, row.due_at, None, None))
                stats.skipped += 1
                skipped.append(row)
        if sending:  # one statement: every reserved message gets the same values
            lease = now + self.config.lease
            conn.execute(MARK_SENDING, {"ids": sending, "now": now, "lease": lease})
        _apply_updates(conn, updates, now)
        if variants:
            executemany(conn, SET_VARIANT, variants)
        _decide_rows(conn, decisions, now)
        stats.planned += self._plan_next(conn, skipped, now)
        for item in reserved:  # the context itself is built where the message renders
            customer = customers[item.row.customer_id]
            item.parts = contexts.parts_for(item.row, customer, now, bundles.carried(item.row))
        return reserved, claimed

    def _decide_batch(
        self,
        rows: list[Any],
        instant_of: Callable[[str], datetime],
        customers: Mapping[str, Any],
        suppressed: Mapping[str, Any],
        history: dict[str, list[Contact]],
        latest: dict[tuple[str, str], datetime],
        bundles: Any,
        contexts: ContextLoader,
    ) -> list[_Decided]:
        """Decide a batch's messages, each customer's at ``instant_of(customer)``, the
        highest priority first: what to send, defer, skip or carry along in a bundle, in
        the order decided. Nothing is written; ``history`` and ``latest`` take the sends
        decided, so the batch's later messages count them."""
        decided: list[_Decided] = []
        by_customer: dict[str, list[Any]] = defaultdict(list)
        for row in rows:
            by_customer[row.customer_id].append(row)
        bundling = bundles.active  # else nothing to take along, settle or leave
        for cid, competing in by_customer.items():
            customer = customers.get(cid)
            at = instant_of(cid)
            if len(competing) > 1:
                competing.sort(key=_decision_order)
            for row in competing:
                if bundling:
                    if bundles.taken(row) or bundles.held_elsewhere(row):
                        continue  # carried by another, or left for the dispatcher holding one
                    bundles.settle(row)
                assignment = self._experiment(contexts.conn, row)
                decision = (
                    Skip(HOLDOUT)
                    if assignment.held_out
                    else self._decide(
                        row, customer, suppressed.get(cid, {}), history[cid], contexts, at, latest
                    )
                )
                if isinstance(decision, Allow):
                    if row.category == "marketing":
                        history[cid].append(Contact(row.channel, at))
                        latest[(cid, row.journey_id)] = at
                    decided.append(
                        _Decided(_Outcome.SEND, row, at, item=_Reserved(row, assignment))
                    )
                    if not bundling:
                        continue
                    pulled = bundles.pull(
                        row,
                        at,
                        lambda s, c=customer, t=at: self._condition_holds(s, c, contexts, t),
                    )
                    for sibling in pulled:
                        decided.append(_Decided(_Outcome.BUNDLED, sibling, at, carrier=row))
                elif isinstance(decision, Defer):
                    until = decision.until or at + HELD
                    decided.append(_Decided(_Outcome.DEFER, row, at, decision.reason, until))
                else:
                    decided.append(_Decided(_Outcome.SKIP, row, at, decision.reason))
        return decided

    def _within_rates(self, rows: list[Any]) -> list[Any]:
        """The claimed rows a batch may reserve: of a rate-limited channel, no more than its
        rate sends in :data:`LEASE_SHARE` of the lease, counting what already waits for it.
        The rest stay ``planned`` for the next tick."""
        if not self._limiters:
            return rows
        lease = self.config.lease.total_seconds() * LEASE_SHARE
        with self._queued_lock:
            room = {
                kind: max(1, int(limiter.rate * lease)) - self._queued[kind]
                for kind, limiter in self._limiters.items()
                if limiter.rate is not None
            }
        kept = []
        for row in rows:
            left = room.get(row.channel)
            if left is not None:
                if left <= 0:
                    continue
                room[row.channel] = left - 1
            kept.append(row)
        return kept

    def _enqueue(self, reserved: list[_Reserved]) -> None:
        with self._queued_lock:
            for item in reserved:
                if item.row.channel in self._limiters:
                    item.queued = True
                    self._queued[item.row.channel] += 1

    def _dequeue(self, item: _Reserved) -> None:
        if item.queued:
            with self._queued_lock:
                item.queued = False
                self._queued[item.row.channel] -= 1

    def _experiment(self, conn: Connection, row: Any) -> Assignment:
        """Whether ``row``'s customer is held out of its journey, else its step's variant."""
        facts = self._step(conn, row)
        if not facts.assigns:  # no holdout, no variants: what assign() answers for every row
            return SEND
        return assign(
            facts.journey, row.step, row.category, row.customer_id, self.config.secret_key
        )

    def _step(self, conn: Connection, row: Any) -> _StepFacts:
        """The facts of ``row``'s step, read from its journey's version once per dispatcher."""
        key = (row.journey_id, row.journey_version, row.step)
        facts = self._steps.get(key)
        if facts is None:
            journey = self.journeys.journey_at(conn, row.journey_id, row.journey_version)
            step = journey.step(row.step) if journey else None
            facts = self._steps[key] = _StepFacts(
                journey=journey,
                window=step.window if step else None,
                topic=journey.consent_topic if journey else None,
                condition=step.condition if step else None,
                min_gap=self.journeys.min_gap(conn, row.journey_id, row.journey_version),
                assigns=journey is not None
                and (journey.holdout_share > 0 or bool(step is not None and step.variants)),
            )
        return facts

    def _decide(self, row, customer, suppressed, history, contexts, now, latest):
        if customer is None:
            return Skip("unknown_customer")
        if not self._condition_holds(row, customer, contexts, now):
            return Skip(f"condition:{row.step}")
        facts = self._step(contexts.conn, row)
        candidate = Candidate(
            channel=row.channel,
            category=row.category,
            due_at=row.due_at,
            expires_at=row.expires_at,
            priority=row.priority,
            send_window=facts.window,
            topic=facts.topic,
        )
        recipient = Recipient(
            timezone=customer.timezone,
            consent={"email": customer.email_consent, "sms": customer.sms_consent},
            topic_consent=customer.topic_consent,
            suppressed=suppressed,
            complaint_open=customer.open_complaints > 0,
            region=self._region(customer),
            last_rating=rating_of(customer),
            unanswered=contexts.unanswered(customer.id, now) if self.policy.rules.fatigue else (),
        )
        decision = self.policy.decide(candidate, recipient, history, now)
        address = customer.email if row.channel == "email" else customer.phone
        if not address and not isinstance(decision, Skip):
            return Skip(f"no_address:{row.channel}")
        if row.category == "marketing" and not isinstance(decision, Skip):
            return self._spaced(contexts.conn, row, decision, latest, now)
        return decision

    def _topic(self, conn: Connection, journey_id: str, version: int) -> str | None:
        """The consent topic of a journey version (campaigns.consent)."""
        journey = self.journeys.journey_at(conn, journey_id, version)
        return journey.consent_topic if journey else None

    def _spaced(self, conn, row, decision, latest, now):
        """``decision``, unless the journey's ``min_gap`` since its last marketing message to
        this customer holds the message longer: then deferred (``min_gap``) until the gap
        has passed, or skipped ``expired`` when that is past its expiry."""
        last = latest.get((row.customer_id, row.journey_id))
        if last is None:
            return decision
        until = last + self._step(conn, row).min_gap
        if until <= now or (isinstance(decision, Defer) and _not_before(decision.until, until)):
            return decision
        if row.expires_at is not None and until >= row.expires_at:
            return Skip("expired")
        return Defer(until, "min_gap")

    def _bundles(self, conn: Connection, rows: list[Any]) -> BatchBundles:
        """The batch's candidates for bundling; one query, none without per-item messages."""
        return BatchBundles.load(
            conn,
            BUNDLE_CANDIDATES,
            rows,
            lambda r: self.journeys.bundle_window(conn, r.journey_id, r.journey_version),
            postgres=self._postgres,
        )

    def _condition_holds(self, row, customer, contexts, now) -> bool:
        """Whether ``row``'s step condition holds for it (for a message of the batch, or one
        a carrier would take along); ``previous`` is read only when the condition asks."""
        condition = self._step(contexts.conn, row).condition
        if not condition:
            return True
        names = condition_names(condition)
        # The customer's order and items only for a condition that reads more than
        # ``previous`` (building them is most of a condition's cost).
        context = contexts.context_for(row, customer, now) if names - {"previous"} else {}
        if "previous" in names:
            context = {**context, "previous": self.journeys.previous_of(contexts, row)}
        return _safe_condition(condition, context)

    def _region(self, customer: Any) -> str | None:
        """The customer's own holiday region, when the policy reads it (cached per customer)."""
        if not self.policy.per_customer_holidays:
            return None
        country = (customer.attributes or {}).get("country")
        return own_region(country if isinstance(country, str) else None, customer.phone)[0]

    def _history(self, conn: Connection, customer_ids: list[str], now: datetime):
        """The customers' recent marketing contacts, and when each journey last reached each
        customer ((customer, journey) → time)."""
        history: dict[str, list[Contact]] = defaultdict(list)
        latest: dict[tuple[str, str], datetime] = {}
        window = max(self.policy.history_window(), self.journeys.longest_min_gap())
        if window <= timedelta(0):
            return history, latest
        rows = conn.execute(HISTORY, {"ids": customer_ids, "since": now - window})
        for cid, channel, sent_at, category, status, journey_id in rows:
            if category != "marketing" or status not in COUNTING_STATUSES:
                continue
            # Another dispatcher's clock (or a later tick's) may stand after ours: a contact
            # "in the future" happened now as far as this decision is concerned.
            at = min(sent_at, now)
            history[cid].append(Contact(channel, at))
            if at > latest.get((cid, journey_id), at - timedelta(1)):
                latest[(cid, journey_id)] = at
        return history, latest

    # -- render and send ---------------------------------------------------------------

    def _job(self, item: _Reserved) -> RenderJob:
        row, parts = item.row, item.parts
        assert parts is not None, "every reserved message has its context's parts"
        variant = item.assignment.variant
        return RenderJob(
            message_id=row.id,
            channel=row.channel,
            template=(variant.template if variant else None) or row.template,
            subject=variant.subject if variant else None,
            category=row.category,
            locale=parts.locale or self.config.default_locale,
            customer_id=row.customer_id,
            journey=row.journey_id,
            step=row.step,
            parts=parts,
            links=self._links,
        )

    def _deliver(self, item: _Reserved, job: RenderJob, rendering: PendingRender | None) -> None:
        """Render and send one message; whatever goes wrong fails this message alone."""
        try:
            outcome = rendering.result() if rendering is not None else None
            if outcome is None:
                outcome = render(self.renderer, job)
            if isinstance(outcome, RenderFailure):
                if outcome.trace is not None:
                    log.error("rendering message %s failed\n%s", job.message_id, outcome.trace)
                item.error = outcome.error() if outcome.kind is None else _unexpected(outcome)
                return
            item.outgoing, item.locale, item.details = (
                outcome.outgoing,
                outcome.locale,
                outcome.details,
            )
            self._send(item)
        except Exception as exc:  # noqa: BLE001 - one broken message never stops the batch
            log.exception("message %s failed", job.message_id)
            item.error = MessageError.of(exc)
        finally:
            self._dequeue(item)

    def _send(self, item: _Reserved) -> None:
        assert item.outgoing is not None
        channel = self.channels.get(item.outgoing.kind)
        if channel is None:
            item.error = PermanentChannelError(f"no {item.outgoing.kind} channel configured")
            return
        limiter = self._limiters.get(item.outgoing.kind)
        if limiter is not None:
            limiter.acquire()
        self._dequeue(item)
        item.skip_reason = self._last_check(item, each=limiter is not None)
        if item.skip_reason is not None:
            item.verdict = Verdict.WITHDRAWN
            return
        assert item.lease is not None, "a reserved message has its lease"
        # Committed before the provider is called: a crash from here on leaves it `unknown`
        # (unless its answer is journalled), before here back to `planned`.
        item.verdict = self._handoffs.enter(item.row.id, item.lease)
        if item.verdict is not Verdict.GO:
            return
        try:
            item.result = channel.send(item.outgoing)
        except ChannelError as exc:
            item.error = exc
        except Exception as exc:  # noqa: BLE001 - an unexpected client failure fails this one
            log.exception("channel %s raised unexpectedly", channel.name)
            item.error = MessageError.of(exc)
        if item.result is not None:
            item.answer = self._answer(item)
            self._handoffs.journal_answer(item.answer, item.lease)
        elif not isinstance(item.error, AmbiguousChannelError):  # no answer: unknown, rightly
            answer = {"_id": item.row.id, "reason": _refusal(item.error)}
            self._handoffs.journal_answer(answer, item.lease)

    def _last_check(self, item: _Reserved, *, each: bool) -> str | None:
        """Why this message may no longer be sent (consent withdrawn, channel suppressed
        since the reservation), or None. Read once per batch, just before its first send;
        for each message on its own (``each``) after waiting for a rate limiter."""
        batch = item.batch
        if each or batch is None:
            marketing = item.row.category == "marketing"
            return self._withdrawn([item.row.id], topics=marketing).get(item.row.id)
        with batch.lock:
            if batch.withdrawn is None:
                batch.withdrawn = self._withdrawn(batch.ids, topics=batch.marketing)
        return batch.withdrawn.get(item.row.id)

    def _withdrawn(self, ids: list[int], *, topics: bool) -> dict[int, str]:
        """``topics``: whether any of them is marketing, the only kind with a consent topic
        (without, its query is not asked)."""
        try:
            with reading(self.db) as conn:
                return transitions.withdrawn(conn, ids, self._topic if topics else None)
        except DBAPIError as exc:  # the reservation's own check stands
            log.warning("last check before the hand-off not read: %s", exc.orig)
            return {}

    def _answer(self, item: _Reserved) -> dict[str, Any]:
        """What the provider's acceptance writes, in the batch's record and in the journal."""
        assert item.result is not None
        return {
            "_id": item.row.id,
            "locale": item.locale,
            "subject": (item.outgoing.subject or "")[:300] or None if item.outgoing else None,
            "provider": item.result.provider,
            "provider_message_id": item.result.provider_message_id,
            "details": {**item.details, **item.result.details},
        }

    # -- record ----------------------------------------------------------------------

    def _record(self, conn: Connection, reserved: list[_Reserved], now: datetime, stats) -> None:
        """Write every outcome of a batch through the transition table.

        What a send's outcome says (provider, message id, details, locale, attempts) is
        written whatever the status has become meanwhile; the status itself moves only
        forward (a report that got here first keeps ``delivered``; lease expiry's
        ``unknown`` becomes ``sent``).
        """
        moves: dict[str, list[dict[str, Any]]] = defaultdict(list)
        decisions: list[tuple] = []
        unfinished: set[int] = set()  # back to planned, or no longer ours: nothing follows
        for item in reserved:
            row, error = item.row, item.error
            if item.verdict is Verdict.GONE:
                unfinished.add(row.id)
            elif item.verdict is Verdict.WITHDRAWN:
                reason = item.skip_reason
                moves[SKIPPED].append(_update(row.id, reason=reason, lease_until=None))
                decisions.append((row.id, "skipped", reason, None, None, "at the hand-off"))
                stats.skipped += 1
            elif item.verdict is Verdict.NOT_MARKED:
                moves[PLANNED].append(_update(row.id, due_at=now, reason=None, lease_until=None))
                decisions.append((row.id, "retry", "hand_off", row.due_at, now, None))
                stats.retried += 1
                unfinished.add(row.id)
            elif item.result is not None:
                moves[SENT].append(self._sent(item))
                decisions.append((row.id, "sent", None, None, None, item.result.provider))
                stats.sent += 1
            elif (
                isinstance(error, TransientChannelError)
                and row.attempts + 1 < self.config.max_attempts
            ):
                delay = backoff_delay(row.attempts + 1, retry_after=error.retry_after, rng=self.rng)
                until = now + timedelta(seconds=delay)
                reason = f"retry:{error.provider or 'provider'}:{error.status or error.code or 'transient'}"
                moves[PLANNED].append(
                    _update(
                        row.id,
                        lease_until=None,
                        handed_over_at=None,
                        due_at=until,
                        reason=reason,
                        attempts=row.attempts + 1,
                    )
                )
                decisions.append((row.id, "retry", reason, row.due_at, until, str(error)))
                stats.retried += 1
                unfinished.add(row.id)
            elif isinstance(error, AmbiguousChannelError):
                moves[UNKNOWN].append(
                    _update(row.id, reason="no_answer", lease_until=None, attempts=row.attempts + 1)
                )
                decisions.append((row.id, "unknown", "no_answer", None, None, str(error)))
                stats.unknown += 1
            else:
                reason = _failure_reason(error)
                if isinstance(error, RecipientOptedOut):
                    _suppress(conn, row.customer_id, row.channel, "sms_stop", "provider", now)
                moves[FAILED].append(
                    _update(
                        row.id,
                        reason=reason,
                        sent_at=None,
                        lease_until=None,
                        attempts=row.attempts + 1,
                    )
                )
                decisions.append((row.id, "failed", reason, None, None, str(error)))
                stats.failed += 1
        for to, updates in moves.items():
            for update in updates:  # recorded: no longer on the wire
                update["handed_over_at"] = None
            transitions.move(conn, to, updates, now, always=transitions.OUTCOME_COLUMNS)
        _decide_rows(conn, decisions, now)
        finished = [item.row for item in reserved if item.row.id not in unfinished]
        stats.planned += self._plan_next(conn, finished, now)

    def _sent(self, item: _Reserved) -> dict[str, Any]:
        """The columns a send's acceptance moves its message to ``sent`` with."""
        answer = item.answer or self._answer(item)  # (a copy: the journal has it too)
        return {
            **answer,
            "segments": answer["details"].get("segments"),  # for the figures
            "reason": None,
            "lease_until": None,
            "attempts": item.row.attempts + 1,
        }

    def _plan_next(
        self,
        conn: Connection,
        finished: list[Any],
        now: datetime,
        at: Mapping[int, datetime] | None = None,
    ) -> int:
        """Plan what follows each finished message; one that cannot be planned fails alone.
        ``at``: each message's own outcome time, by id, where not ``now``.

        The batch is planned in one go. Planning writes only with insert-or-ignore, so when
        that raises (a bug, not the database: a database error still fails the
        transaction), each message is planned again in a savepoint of its own, and one that
        still raises gets ``error:<kind>`` in its history; its status stays what it is.
        """
        if not finished:
            return 0
        try:
            return self.journeys.plan_next(conn, finished, now, at=at)
        except DBAPIError:
            raise
        except Exception:  # noqa: BLE001 - found below, message by message
            log.debug("planning a batch failed; planning message by message", exc_info=True)
        planned = 0
        for row in finished:
            when = at[row.id] if at else now
            try:
                with conn.begin_nested():
                    planned += self.journeys.plan_next(conn, [row], when)
            except DBAPIError:
                raise
            except Exception as exc:  # noqa: BLE001 - one message's next step, not the batch
                self._plan_failed(conn, row, exc, when)
        return planned

    def _plan_failed(self, conn: Connection, row: Any, exc: Exception, now: datetime) -> None:
        log.error("planning the step after message %s failed: %s", row.id, exc, exc_info=exc)
        reason = f"error:{type(exc).__name__}"
        _decide_rows(conn, [(row.id, "plan_failed", reason, None, None, str(exc)[:1000])], now)


# ----------------------------------------------------------------------- helpers


def _settle(rows: list[Any], entries: Mapping[int, Entry]) -> tuple[list[Any], ...]:
    """Messages whose lease ran out, by what their dispatcher journalled before it died:
    never handed over; accepted (a provider id); refused for now (``retry:…``); refused;
    handed over with no answer."""
    left, accepted, retried, refused, doubt = [], [], [], [], []
    for row in rows:
        entry = entries[row.id]
        if not entry.handed_over:
            left.append(row)
        elif entry.provider_message_id:
            accepted.append(row)
        elif entry.reason and entry.reason.startswith("retry:"):
            retried.append(row)
        elif entry.reason:
            refused.append(row)
        else:
            doubt.append(row)
    return left, accepted, retried, refused, doubt


def _accepted(entry: Entry) -> dict[str, Any]:
    """The provider's acceptance as journalled, as the message's columns."""
    return {
        "provider": entry.provider,
        "provider_message_id": entry.provider_message_id,
        "details": entry.details or {},
        "segments": (entry.details or {}).get("segments"),  # for the figures
        "locale": entry.locale,
        "subject": entry.subject,
    }


def _unrecorded(conn: Connection, reserved: list[_Reserved]) -> list[_Reserved]:
    """Of a batch whose record may or may not have committed, what is still to write.

    A recorded attempt raised ``attempts``; a message withdrawn or not handed over is
    recorded once it is no longer ``sending``.
    """
    ids = [item.row.id for item in reserved]
    if not ids:
        return []
    stored = {
        mid: (status, attempts)
        for mid, status, attempts in conn.execute(
            sa.select(messages_t.c.id, messages_t.c.status, messages_t.c.attempts).where(
                messages_t.c.id.in_(ids)
            )
        )
    }
    pending = []
    for item in reserved:
        status, attempts = stored.get(item.row.id, (None, None))
        if item.verdict in (Verdict.WITHDRAWN, Verdict.NOT_MARKED):
            if status == SENDING:
                pending.append(item)
        elif attempts == item.row.attempts:
            pending.append(item)
    return pending


def _whole_customers(rows: list[Any], limit: int) -> list[Any]:
    """The rows of the customers whose first due message comes first, whole, as many as fit
    in ``limit`` rows (the first customer always): a batch of whole customers stays the size
    of a batch, and what it holds in memory with it. The rest stay planned for the next."""
    sizes = Counter(r.customer_id for r in rows)
    kept: set[str] = set()
    total = 0
    for row in rows:  # in due order
        customer = row.customer_id
        if customer in kept:
            continue
        if kept and total + sizes[customer] > limit:
            break
        kept.add(customer)
        total += sizes[customer]
    return rows if len(kept) == len(sizes) else [r for r in rows if r.customer_id in kept]


def _not_paused() -> Any:
    paused = sa.select(journeys_t.c.journey_id).where(journeys_t.c.paused.is_(True))
    return messages_t.c.journey_id.not_in(paused)


# The statements a tick runs, built once: building a SQLAlchemy statement costs more than
# SQLite takes to run it (up to 0.7 ms for the one below), and a tick runs a dozen.
def _moment(name: str) -> Any:
    return sa.bindparam(name, type_=UTCDateTime())


_m = messages_t.c
_DUE_ORDER = (_m.due_at, _m.priority.desc(), _m.id)
UPCOMING = sa.select(
    sa.select(sa.func.min(_m.due_at)).where(_m.status == PLANNED, _not_paused()).scalar_subquery(),
    sa.select(sa.func.min(events_t.c.at)).where(events_t.c.applied.is_(False)).scalar_subquery(),
    sa.select(sa.func.min(_m.lease_until)).where(_m.status == SENDING).scalar_subquery(),
)


class Claimed(NamedTuple):
    """What deciding, rendering, recording and planning read of a claimed message.

    A plain named tuple, not SQLAlchemy's Row: a Row's attribute is found only after the
    ordinary lookup has failed and built its AttributeError, about ten times the cost of a
    tuple's, and a batch reads dozens per message."""

    id: int
    enrollment_id: str
    customer_id: str
    order_id: str | None
    journey_id: str
    journey_version: int
    step: str
    occurrence: int
    channel: str
    category: str
    template: str
    priority: int
    due_at: datetime
    expires_at: datetime | None
    attempts: int


CLAIMED = tuple(_m[name] for name in Claimed._fields)


def as_claimed(result: Any) -> list[Claimed]:
    """The rows of a select of :data:`CLAIMED` as :class:`Claimed` tuples."""
    return list(map(Claimed._make, result))


CLAIM = (
    sa.select(*CLAIMED)
    .where(_m.status == PLANNED, _m.due_at <= _moment("now"), _not_paused())
    .order_by(*_DUE_ORDER)
    .limit(sa.bindparam("limit"))
)
CLAIM_SKIP_LOCKED = CLAIM.with_for_update(skip_locked=True, of=messages_t)
BUNDLE_CANDIDATES = candidates_query(CLAIMED)
# Every due message of the claimed customers, through the customer's own index and only
# its unsent part (transitions.PLANNED_UNSENT), not every due message of every customer.
_DUE_OF_CUSTOMERS = (
    id_in(_m.customer_id),
    *transitions.PLANNED_UNSENT,
    _m.due_at <= _moment("now"),
    _not_paused(),
)
CUSTOMERS_DUE = sa.select(*CLAIMED).where(*_DUE_OF_CUSTOMERS).order_by(*_DUE_ORDER)
CUSTOMERS_DUE_SKIP_LOCKED = CUSTOMERS_DUE.with_for_update(skip_locked=True, of=messages_t)
# The same, only after a claimed row in the due order (due_at, then priority descending, id).
CUSTOMERS_DUE_AFTER = CUSTOMERS_DUE.where(
    sa.or_(
        _m.due_at > _moment("due"),
        sa.and_(
            _m.due_at == _moment("due"),
            sa.or_(
                _m.priority < sa.bindparam("priority"),
                sa.and_(_m.priority == sa.bindparam("priority"), _m.id > sa.bindparam("id")),
            ),
        ),
    )
)
DUE_OF = sa.select(_m.id, _m.customer_id).where(*_DUE_OF_CUSTOMERS)
# The customers whose lock this transaction could take now, without waiting for anyone.
TRY_LOCKS = sa.text(
    "SELECT k FROM unnest(CAST(:keys AS bigint[])) AS k WHERE pg_try_advisory_xact_lock(k)"
)
LEASE_EXPIRED = sa.select(messages_t).where(_m.status == SENDING, _m.lease_until <= _moment("now"))
DECIDE = decisions_t.insert()
MARK_SENDING = unjournaled(
    messages_t.update()
    .where(id_in(_m.id))
    .values(status=SENDING, sent_at=_moment("now"), lease_until=_moment("lease"),
            handed_over_at=None, reason=None, updated_at=_moment("now"))
)  # fmt: skip
SUPPRESSIONS = sa.select(
    suppressions_t.c.customer_id, suppressions_t.c.channel, suppressions_t.c.reason
).where(id_in(suppressions_t.c.customer_id))
# Only (customer, sent_at) in SQL: with a status condition there, SQLite's planner (without
# statistics) walks ix_messages_due over every sent message of the log — 160 ms a batch at
# a million messages. The window holds few rows; they are filtered in Python.
HISTORY = sa.select(
    _m.customer_id, _m.channel, _m.sent_at, _m.category, _m.status, _m.journey_id
).where(id_in(_m.customer_id), _m.sent_at > _moment("since"))


def _decision_order(row: Any) -> tuple:
    """A customer's competing messages are decided highest priority first."""
    return (-row.priority, row.due_at, row.id)


def _bundled(sibling: Any, carrier: Any) -> dict[str, Any]:
    """The update of a message that ``carrier`` takes along (campaigns.bundling)."""
    return _update(sibling.id, status=SKIPPED, reason=BUNDLED, bundled_into=carrier.id)


def _variant(row: Any, variant: Any) -> dict[str, Any]:
    """The values naming the variant a reserved message goes out as, and its template."""
    return {"_id": row.id, "variant": variant.id, "template": variant.template or row.template}


# Which variant a reserved message goes out as: columns of its own, not a status move.
SET_VARIANT = (
    messages_t.update()
    .where(_m.id == sa.bindparam("_id"))
    .values(variant=sa.bindparam("variant"), template=sa.bindparam("template"))
)


# Claims in a row that found only customers some of whose rows another claim holds, and
# the pause before the next (times the count): the other claim's transaction ends meanwhile.
CONTENDED_CLAIMS = 5
CONTENDED_PAUSE = 0.02


def _lock_key(customer_id: str) -> int:
    return zlib.crc32(customer_id.encode()) - 2**31


def _update(message_id: int, **values: Any) -> dict[str, Any]:
    return {"_id": message_id, **values}


def _apply_updates(conn: Connection, updates: list[dict[str, Any]], now: datetime) -> None:
    """Apply the reservation's updates through the transition table: those that set a
    ``status`` move there, the others (deferrals) stay ``planned`` with new values."""
    moves: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for update in updates:
        values = dict(update)
        moves[values.pop("status", PLANNED)].append(values)
    for to, rows in moves.items():
        transitions.move(conn, to, rows, now)


def _decide_rows(conn: Connection, rows: list[tuple], now: datetime) -> None:
    executemany(
        conn,
        DECIDE,
        [
            {
                "message_id": mid,
                "at": now,
                "action": action,
                "reason": reason,
                "due_before": before,
                "due_after": after,
                "detail": detail,
            }
            for mid, action, reason, before, after, detail in rows
        ],
    )


def _suppressions(conn: Connection, customer_ids: list[str]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = defaultdict(dict)
    for cid, channel, reason in conn.execute(SUPPRESSIONS, {"ids": customer_ids}):
        found[cid][channel] = reason
    return found


def _suppress(conn: Connection, customer_id: str, channel: str, reason: str, source: str, now):
    """Suppress a channel; one already suppressed (by anyone, even concurrently) stays so."""
    conn.execute(
        insert_ignore_statement(conn, suppressions_t, ("customer_id", "channel")),
        {
            "customer_id": customer_id,
            "channel": channel,
            "reason": reason,
            "source": source,
            "created_at": now,
        },
    )


def _unexpected(failure: RenderFailure) -> MessageError:
    return MessageError(failure.kind or "Exception", failure.message)


def _refusal(error: Exception | None) -> str:
    """A refused send's reason as journalled: ``retry:…`` if another attempt may work."""
    if isinstance(error, TransientChannelError):
        return f"retry:{error.provider or 'provider'}:{error.status or error.code or 'transient'}"
    return _failure_reason(error)


def _failure_reason(error: Exception | None) -> str:
    if isinstance(error, RecipientOptedOut):
        return "suppressed:sms_stop"
    if isinstance(error, MessageError):
        return f"error:{error.kind}"
    if isinstance(error, TemplateError):
        return "render_error"
    if isinstance(error, ChannelError):
        code = error.code or error.status or "error"
        return f"provider_error:{error.provider or 'provider'}:{code}"
    return "error"


def _not_before(until: datetime | None, moment: datetime) -> bool:
    """Whether a deferral ``until`` already holds a message to ``moment`` (None: held)."""
    return until is None or until >= moment


def _safe_condition(source: str, context: Mapping[str, Any]) -> bool:
    try:
        return evaluate(source, context)
    except Exception:  # noqa: BLE001 - a condition that cannot be evaluated does not send
        return False
