"""A forecast over several processes: the customers split between copies of the snapshot.

One customer's decisions and events touch no other customer's — caps, spacing, bundling,
conditions, planning and everything an event changes read and write only that customer's
rows (:mod:`scheduler.simulation` takes each customer forward on their own for the same
reason). Rate limits are the exception: they count the sends of everyone, so a project
with ``email_rate`` or ``sms_rate`` is forecast in one process. Otherwise:

* :func:`split` copies the snapshot once per process. Each copy keeps what is due for its
  own customers only (customer ``id`` belongs to copy ``crc32(id) % parts``): the other
  customers' planned and sending messages are set aside as ``cancelled`` (kept, so that
  the copy numbers its new messages after the snapshot's, as the snapshot itself would)
  and their pending events as applied. Nothing is due for them there, so the engine never
  comes to them.
* The copies are forecast side by side, each in a process of its own.
* :func:`merge` writes each copy's outcome back into the snapshot: its customers'
  messages (the new ones numbered after everything merged before them), the decisions the
  forecast wrote (numbered after the snapshot's own, pointing at the renumbered
  messages), and its customers' rows. The figures then read the snapshot exactly as they
  read a forecast run in one process: the same messages, statuses, times and decisions.
"""

from __future__ import annotations

import sqlite3
import zlib
from pathlib import Path

from campaigns.models import PLANNED, SENDING

WORK = {"planned": PLANNED, "sending": SENDING}  # the statuses the engine moves on

# Indexes of messages the figures do not read: the merge need not keep them current.
UNREAD_INDEXES = (
    "ix_messages_journey_figures",
    "ix_messages_decided",
    "ix_messages_provider_message_id",
    "ix_messages_customer_sent",
)

# Below this many customers a forecast runs in one process: starting another costs more.
CUSTOMERS_PER_PROCESS = 2_000
# Each process holds a copy of the database on disk and up to a few hundred MB in memory.
MAX_PROCESSES = 8


def shard_of(customer_id: str, parts: int) -> int:
    """The copy (0 … ``parts`` - 1) that forecasts ``customer_id``; the same in every process."""
    return zlib.crc32(customer_id.encode()) % parts


def _connect(path: Path, parts: int) -> sqlite3.Connection:
    """A plain connection (foreign keys off: the copies' own bookkeeping) with ``shard()``."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.create_function("shard", 1, lambda customer: shard_of(customer, parts), deterministic=True)
    conn.execute("PRAGMA synchronous=OFF")  # a throwaway file: no crash to survive
    return conn


def processes_for(customers: int, cpus: int | None, rated: bool) -> int:
    """How many processes forecast ``customers``: one per ``CUSTOMERS_PER_PROCESS``, at most
    one per CPU and ``MAX_PROCESSES``, and one when rate limits count everyone's sends
    together."""
    if rated:
        return 1
    return max(1, min(cpus or 1, MAX_PROCESSES, customers // CUSTOMERS_PER_PROCESS))


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def split(snapshot: Path, parts: int) -> list[Path]:
    """``parts`` copies of ``snapshot`` beside it, each with only its customers' work due."""
    copies = []
    source = sqlite3.connect(snapshot)
    try:
        for part in range(parts):
            target = snapshot.with_name(f"{snapshot.stem}-part{part}.db")
            writer = sqlite3.connect(target)
            try:
                source.backup(writer)
            finally:
                writer.close()
            conn = _connect(target, parts)
            try:
                conn.execute("BEGIN")
                params = {"part": part, **WORK}
                conn.execute(
                    "UPDATE messages SET status = 'cancelled' "
                    "WHERE status IN (:planned, :sending) AND shard(customer_id) != :part",
                    params,
                )
                conn.execute(
                    "UPDATE events SET applied = 1 "
                    "WHERE applied = 0 AND shard(customer_id) != :part",
                    params,
                )
                conn.execute("COMMIT")
            finally:
                conn.close()
            copies.append(target)
    finally:
        source.close()
    return copies


def merge(snapshot: Path, copies: list[Path], mark: int) -> None:
    """Write each forecast copy's customers' outcome back into ``snapshot``.

    ``mark``: the last decision of the snapshot (the copies' later ones are the forecast's).
    """
    parts = len(copies)
    conn = _connect(snapshot, parts)
    try:
        messages, decisions, customers = (
            _columns(conn, t) for t in ("messages", "message_decisions", "customers")
        )
        first = conn.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()[0]
        # A new message of a copy: id - first + offset, offset after those merged before.
        renumber = "CASE WHEN {0} > :first THEN {0} - :first + :offset ELSE {0} END"
        chosen = {"id": renumber.format("id"), "bundled_into": renumber.format("bundled_into")}
        moved = ", ".join(chosen.get(c, c) for c in messages)
        noted = ", ".join(
            renumber.format(c) if c == "message_id" else c for c in decisions if c != "id"
        )
        for index in UNREAD_INDEXES:  # kept current for every row merged, read by no figure
            conn.execute(f"DROP INDEX IF EXISTS {index}")
        offset = first
        for part, copy in enumerate(copies):
            conn.execute("ATTACH DATABASE ? AS part", (str(copy),))
            try:
                conn.execute("BEGIN")
                params = {"first": first, "offset": offset, "part": part, **WORK}
                # The engine moves only planned and sending messages, and adds new ones:
                # the copy's customers' history before the snapshot is the same on both sides.
                conn.execute("DROP TABLE IF EXISTS temp.moved")
                conn.execute(
                    "CREATE TEMP TABLE moved AS SELECT id FROM main.messages "
                    "WHERE status IN (:planned, :sending) AND shard(customer_id) = :part",
                    params,
                )
                conn.execute("DELETE FROM main.messages WHERE id IN (SELECT id FROM moved)")
                conn.execute(
                    f"INSERT INTO main.messages ({', '.join(messages)}) SELECT {moved} "
                    "FROM part.messages WHERE shard(customer_id) = :part "
                    "AND (id > :first OR id IN (SELECT id FROM moved))",
                    params,
                )
                conn.execute(
                    f"INSERT INTO main.message_decisions ({', '.join(c for c in decisions if c != 'id')}) "
                    f"SELECT {noted} FROM part.message_decisions WHERE id > :mark ORDER BY id",
                    {**params, "mark": mark},
                )
                conn.execute("DELETE FROM main.customers WHERE shard(id) = :part", params)
                conn.execute(
                    f"INSERT INTO main.customers ({', '.join(customers)}) "
                    f"SELECT {', '.join(customers)} FROM part.customers WHERE shard(id) = :part",
                    params,
                )
                last = conn.execute("SELECT coalesce(max(id), 0) FROM part.messages").fetchone()[0]
                conn.execute("COMMIT")
            finally:
                conn.execute("DETACH DATABASE part")
            offset += max(0, last - first)
    finally:
        conn.close()
