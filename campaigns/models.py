"""The tables: customers, purchases, events, journeys, enrolments and the send log.

All times are stored in UTC and come back as aware datetimes (:class:`UTCDateTime`), so
SQLite and PostgreSQL compare them the same way. Uniqueness that matters for idempotency
(one enrolment per entry, one message per step occurrence, one event per id) is enforced by
unique indexes, never by check-then-insert.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.types import TypeDecorator
from sqlmodel import JSON, Column, Field, SQLModel

# Message statuses. `planned` waits for its due time, `sending` is reserved by a
# dispatcher; every other status is terminal. Which moves between them are allowed, and the
# one function that makes them, are in campaigns.transitions.
PLANNED = "planned"
SENDING = "sending"
SENT = "sent"
DELIVERED = "delivered"
BOUNCED = "bounced"
FAILED = "failed"
SKIPPED = "skipped"
CANCELLED = "cancelled"
UNKNOWN = "unknown"
TERMINAL_STATUSES = (SENT, DELIVERED, BOUNCED, FAILED, SKIPPED, CANCELLED, UNKNOWN)
# Statuses that count against frequency caps: anything that may have reached the customer.
COUNTING_STATUSES = (SENDING, SENT, DELIVERED, BOUNCED, UNKNOWN)


# A connection's execution option: it only reads (see :func:`reading`).
READ_ONLY = "aftersale_read_only"


def reading(db: Engine) -> Connection:
    """A connection for reading only; writes belong in ``db.begin()``.

    On SQLite every transaction otherwise begins ``IMMEDIATE``, taking the database's one
    write lock. A reader's begins ``DEFERRED`` instead, so a long read (a log export, an
    admin page) never holds up a dispatcher; WAL gives it a consistent snapshot meanwhile.
    """
    return db.connect().execution_options(**{READ_ONLY: True})


class UTCDateTime(TypeDecorator):
    """An aware datetime stored as UTC; naive input is rejected rather than guessed."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        value = _in_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def bind_processor(self, dialect: Any) -> Any:
        # On SQLite, one function instead of this decorator's and SQLite DATETIME's in a
        # row: the same text in a third of the time, for each of the many datetimes that
        # planning and dispatching write.
        if dialect.name == "sqlite":
            return sqlite_datetime
        return super().bind_processor(dialect)

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        # On SQLite, the stored text read straight as an aware time: the same value in a
        # fifth of the time of SQLite DATETIME's parser and this decorator's in a row, for
        # the many times that dispatching and planning read (customers, messages, events).
        if dialect.name == "sqlite":
            return _sqlite_utc(super().result_processor(dialect, coltype))
        return super().result_processor(dialect, coltype)


def sqlite_datetime(value: datetime | None) -> str | None:
    """An aware time as :class:`UTCDateTime` stores it in SQLite: naive UTC text with
    microseconds ("2026-03-02 09:00:00.000000"), exactly as SQLAlchemy's SQLite DATETIME
    writes it, so that times compare correctly as text."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = _in_utc(value)
    return value.isoformat(" ", "microseconds")[:26]  # without its "+00:00"


def _sqlite_utc(slow: Any) -> Any:
    """A reader of the text :func:`sqlite_datetime` stores (naive UTC) as an aware UTC
    time, falling back on ``slow`` (the decorated parser) for any other text."""
    fromisoformat = datetime.fromisoformat

    def process(value: str | None) -> datetime | None:
        if value is None:
            return None
        # A date and a time, as stored: "2026-03-02 09:00:00.000000".
        if value.__class__ is str and len(value) >= 19:
            try:
                return fromisoformat(value + "+00:00")
            except ValueError:
                pass
        return slow(value)

    return process


def _in_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r} given where an aware one is required")
    return value.astimezone(UTC)


def utc_field(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def json_field() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Customer(SQLModel, table=True):
    __tablename__ = "customers"

    id: str = Field(primary_key=True, max_length=128)
    email: str | None = Field(default=None, index=True)
    phone: str | None = Field(default=None, index=True)
    first_name: str = ""
    last_name: str = ""
    locale: str = "de"
    timezone: str | None = None
    email_consent: bool = False
    sms_consent: bool = False
    email_consent_source: str = "import"
    sms_consent_source: str = "import"
    open_complaints: int = 0
    attributes: dict[str, Any] = json_field()
    # Marketing consent per channel and topic ({"email:offers": false}); a pair not named
    # follows the channel's consent (campaigns.consent). None: never given one.
    topic_consent: dict[str, bool] | None = Field(
        default=None, sa_column=Column(JSON(none_as_null=True), nullable=True)
    )
    # What the customer is worth to the shop, kept current as events are applied
    # (campaigns.value): orders and revenue net of returns, the first and last purchase,
    # complaints ever opened and the last satisfaction rating with its time.
    orders: int = 0
    revenue: str = "0"
    revenue_currency: str = ""
    first_purchase_at: datetime | None = utc_field()
    last_purchase_at: datetime | None = utc_field()
    complaints: int = 0
    satisfaction: int | None = None
    satisfaction_at: datetime | None = utc_field()
    created_at: datetime | None = utc_field()
    updated_at: datetime | None = utc_field()


class Suppression(SQLModel, table=True):
    """A channel we must not use for a customer at all (bounce, spam report, STOP)."""

    __tablename__ = "suppressions"
    __table_args__ = (sa.UniqueConstraint("customer_id", "channel"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(foreign_key="customers.id", index=True)
    channel: str
    reason: str
    source: str = ""
    created_at: datetime | None = utc_field()


class Purchase(SQLModel, table=True):
    __tablename__ = "purchases"

    id: str = Field(primary_key=True, max_length=128)
    customer_id: str = Field(index=True)
    event_id: str | None = None
    purchased_at: datetime | None = utc_field(nullable=False)
    total: str = "0"
    currency: str = "EUR"
    returned_at: datetime | None = utc_field()


class PurchaseItem(SQLModel, table=True):
    __tablename__ = "purchase_items"
    __table_args__ = (sa.UniqueConstraint("order_id", "position"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(foreign_key="purchases.id")
    position: int = 0
    sku: str = ""
    name: str = ""
    category: str = ""
    price: str = "0"
    quantity: int = 1
    warranty_months: int | None = None
    inspection_interval_days: int | None = None
    warranty_extended_at: datetime | None = utc_field()


class Event(SQLModel, table=True):
    """An imported customer event, applied when the clock reaches its ``at``.

    An event whose application raised is set aside (``applied`` with ``failed_at``,
    ``error`` = ``error:<kind>`` and ``error_detail``) until it is retried.
    """

    __tablename__ = "events"
    __table_args__ = (
        sa.Index("ix_events_pending", "applied", "at"),
        sa.Index(
            "ix_events_failed",
            "failed_at",
            sqlite_where=sa.text("failed_at IS NOT NULL"),
            postgresql_where=sa.text("failed_at IS NOT NULL"),
        ),
    )

    id: str = Field(primary_key=True, max_length=128)
    type: str
    customer_id: str = Field(index=True)
    at: datetime | None = utc_field(nullable=False)
    payload: dict[str, Any] = json_field()
    applied: bool = False
    applied_at: datetime | None = utc_field()
    source: str = "import"
    failed_at: datetime | None = utc_field()
    error: str | None = None
    error_detail: str | None = None


class Complaint(SQLModel, table=True):
    """A complaint with its subject: the order and item it concerns and why, when known.

    One row per ``complaint_opened`` event (its id is the event's); ``resolved_at`` is set
    by the ``complaint_resolved`` that closes it. Early warning (campaigns.warning) counts
    these per SKU, category and journey.
    """

    __tablename__ = "complaints"
    __table_args__ = (sa.Index("ix_complaints_opened", "opened_at"),)

    id: str = Field(primary_key=True, max_length=128)
    customer_id: str = Field(index=True)
    order_id: str | None = None
    sku: str | None = None
    category: str | None = None
    reason: str | None = None
    opened_at: datetime | None = utc_field(nullable=False)
    resolved_at: datetime | None = utc_field()


class JourneyVersion(SQLModel, table=True):
    """One version of a journey definition; editing a journey adds a version."""

    __tablename__ = "journey_versions"
    __table_args__ = (
        sa.UniqueConstraint("journey_id", "version"),
        sa.UniqueConstraint("journey_id", "digest"),
    )

    id: int | None = Field(default=None, primary_key=True)
    journey_id: str = Field(index=True)
    version: int
    digest: str
    name: str = ""
    definition: dict[str, Any] = json_field()
    source_file: str = ""
    created_at: datetime | None = utc_field()


class JourneyState(SQLModel, table=True):
    """Per journey: which version is current and whether an admin paused it."""

    __tablename__ = "journeys"

    journey_id: str = Field(primary_key=True)
    current_version_id: int = Field(foreign_key="journey_versions.id")
    paused: bool = False
    active: bool = True


class Enrollment(SQLModel, table=True):
    __tablename__ = "enrollments"
    __table_args__ = (
        # One enrolment per entry, customer first: the same index finds a customer's
        # enrolments (the timeline, exits, returns, repurchases), so no other is needed.
        sa.UniqueConstraint(
            "customer_id", "journey_id", "entry_key", name="uq_enrollments_customer_entry"
        ),
    )

    id: str = Field(primary_key=True, max_length=400)  # "<journey>:<customer>:<entry key>"
    journey_id: str
    journey_version_id: int = Field(foreign_key="journey_versions.id")
    customer_id: str
    order_id: str | None = None
    item_position: int | None = None
    entry_key: str
    trigger_event_id: str | None = None
    status: str = "active"  # active | completed | exited | cancelled
    reason: str | None = None
    enrolled_at: datetime | None = utc_field(nullable=False)
    ended_at: datetime | None = utc_field()
    # The enrolment's whole timetable, in due order, when it has more than one message:
    # [step, occurrence, due, expires] with times in microseconds since the epoch (UTC).
    # Only the next message is planned; the engine plans the one after when it ends.
    schedule: list[list[Any]] | None = Field(
        default=None, sa_column=Column(JSON(none_as_null=True), nullable=True)
    )


FIGURE_COLUMNS = (
    "journey_id", "step", "channel", "customer_id", "category", "status", "reason", "due_at",
    "sent_at", "provider", "delivered_at", "opened_at", "clicked_at", "variant", "segments",
)  # fmt: skip


def _literal(status: str) -> Any:
    return sa.literal_column(f"'{status}'")


def _figured(status: Any) -> Any:
    """Has an outcome: what the figures' index holds."""
    return status.not_in([_literal(PLANNED), _literal(SENDING)])


def _decided(status: Any) -> Any:
    """No longer planned: what the decided view's index holds."""
    return status != _literal(PLANNED)


def _in_flight(status: Any) -> Any:
    """Being sent: what the index of in-flight messages by enrolment holds."""
    return status == _literal(SENDING)


# Partial indexes: a planned message enters neither, so planning one and marking it
# ``sending`` maintain neither. A planner uses such an index only for a query whose WHERE
# holds the index's own condition, and a bound parameter in its place is not recognised:
# queries name FIGURED and DECIDED (below), the same conditions in literal SQL.
_STATUS = sa.column("status")


class Message(SQLModel, table=True):
    """One planned message and, once decided, its outcome: a row of the send log."""

    __tablename__ = "messages"
    __table_args__ = (
        sa.UniqueConstraint("enrollment_id", "step", "occurrence"),
        sa.Index("ix_messages_due", "status", "due_at"),
        sa.Index("ix_messages_customer_sent", "customer_id", "sent_at"),
        # Every column the figures of ``aftersale stats`` read: funnels and experiments are
        # grouped straight off this index, in its order, without reading the rows.
        # Messages planned or being sent are not in it: they carry no figures yet.
        sa.Index(
            "ix_messages_journey_figures",
            *FIGURE_COLUMNS,
            sqlite_where=_figured(_STATUS),
            postgresql_where=_figured(_STATUS),
        ),
        # The send log's decided view, newest decision first, pages without a sort.
        sa.Index(
            "ix_messages_decided",
            "updated_at",
            sqlite_where=_decided(_STATUS),
            postgresql_where=_decided(_STATUS),
        ),
        # An enrolment's messages are found through the unique key's first column; see
        # campaigns.store.ENROLMENT_PLANNED for why its status is compared as text. Those
        # being sent are found here instead, without reading the enrolment's history: a
        # few rows at any time, written when a message is reserved and when it is recorded.
        sa.Index(
            "ix_messages_in_flight",
            "enrollment_id",
            sqlite_where=_in_flight(_STATUS),
            postgresql_where=_in_flight(_STATUS),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    enrollment_id: str = Field(foreign_key="enrollments.id")
    customer_id: str
    order_id: str | None = None
    journey_id: str
    journey_version: int = 1
    step: str
    occurrence: int = 1
    channel: str
    category: str
    template: str
    priority: int = 0
    locale: str | None = None
    status: str = PLANNED
    reason: str | None = None
    due_at: datetime | None = utc_field(nullable=False)
    planned_at: datetime | None = utc_field()
    expires_at: datetime | None = utc_field()
    sent_at: datetime | None = utc_field()
    lease_until: datetime | None = utc_field()
    # While `sending` (PostgreSQL): committed just before the provider is called, so a
    # message without it never left; cleared when the outcome is recorded.
    handed_over_at: datetime | None = utc_field()
    attempts: int = 0
    # The message that carried this one (skipped, reason "bundled"); see campaigns.bundling.
    bundled_into: int | None = None
    # The variant of its step the message went out as (campaigns.experiments), else None.
    variant: str | None = None
    provider: str | None = None
    provider_message_id: str | None = Field(default=None, index=True)
    details: dict[str, Any] = json_field()
    # A sent SMS's segments, as its details give them: what the figures price it by, read
    # without parsing the details of every sent SMS (None: one segment; e-mails have none).
    segments: int | None = None
    delivered_at: datetime | None = utc_field()
    opened_at: datetime | None = utc_field()
    clicked_at: datetime | None = utc_field()
    updated_at: datetime | None = utc_field()
    subject: str | None = Field(default=None, max_length=300)  # as rendered, when it went out


class NotEnrolled(SQLModel, table=True):
    """An event that could have started a journey and did not, and why: one row per
    (event, journey). ``reason`` is one of :data:`NOT_ENROLLED_REASONS`; ``expression`` is
    the condition that failed (audience, trigger or item condition), when one did."""

    __tablename__ = "not_enrolled"
    __table_args__ = (
        sa.UniqueConstraint("event_id", "journey_id", name="uq_not_enrolled_event_journey"),
    )

    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(index=True)
    journey_id: str
    event_id: str
    at: datetime | None = utc_field(nullable=False)
    reason: str
    expression: str | None = None


# Why an event did not start a journey, in the order they are checked.
NOT_ENROLLED_REASONS = {
    "paused": "the journey is paused",
    "trigger_condition": "the trigger's condition is false",
    "audience": "the customer is outside the journey's audience",
    "no_item": "the order has no items",
    "item_condition": "no item of the order meets the item condition",
    "reentry": "already enrolled (re-entry rule)",
}


class MessageDecision(SQLModel, table=True):
    """Every step in a message's life: deferrals with their new due time, retries, outcomes."""

    __tablename__ = "message_decisions"

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="messages.id", index=True)
    at: datetime | None = utc_field(nullable=False)
    action: str  # deferred | skipped | cancelled | sending | sent | failed | retry | unknown | ...
    reason: str | None = None
    due_before: datetime | None = utc_field()
    due_after: datetime | None = utc_field()
    detail: str | None = None


class DeliveryEventRecord(SQLModel, table=True):
    """A provider report (webhook) already applied; the unique key makes replays no-ops."""

    __tablename__ = "delivery_events"
    __table_args__ = (sa.UniqueConstraint("provider", "event_id"),)

    id: int | None = Field(default=None, primary_key=True)
    provider: str
    event_id: str
    message_id: int | None = Field(default=None, index=True)
    event_type: str
    at: datetime | None = utc_field()
    raw: dict[str, Any] = json_field()


class ProjectState(SQLModel, table=True):
    """Small key/value facts about the project, such as where the simulated clock stands."""

    __tablename__ = "project_state"

    key: str = Field(primary_key=True)
    value: str


class DispatcherHeartbeat(SQLModel, table=True):
    """A dispatcher process saying it is alive; the admin dashboard lists the live ones."""

    __tablename__ = "dispatchers"

    id: str = Field(primary_key=True, max_length=200)  # "<host>:<pid>:<start>"
    hostname: str = ""
    pid: int = 0
    started_at: datetime | None = utc_field()
    seen_at: datetime | None = utc_field(index=True)
    is_leader: bool = False
    sent: int = 0


class User(SQLModel, table=True):
    """Someone who may log in to the admin console."""

    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=200)
    password_hash: str
    role: str = "viewer"  # admin | viewer
    created_at: datetime | None = utc_field()
    failed_logins: int = 0
    last_failed_at: datetime | None = utc_field()
    last_login_at: datetime | None = utc_field()


class AdminSession(SQLModel, table=True):
    """A console login: the cookie carries a random token, the row its SHA-256 (``id``).

    Deleting the row ends the session at once (logout, password or role change, removal).
    """

    __tablename__ = "sessions"

    id: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="users.id", index=True)
    created_at: datetime | None = utc_field(nullable=False)
    last_seen_at: datetime | None = utc_field(nullable=False)
    client: str = Field(default="", max_length=100)


# The partial indexes' conditions as query terms (see _figured and _decided).
FIGURED = _figured(Message.__table__.c.status)
DECIDED = _decided(Message.__table__.c.status)
IN_FLIGHT = _in_flight(Message.__table__.c.status)
