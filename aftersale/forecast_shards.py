"""A forecast over several processes: the customers split between copies of the snapshot.

One customer's decisions and events touch no other customer's — caps, spacing, bundling,
conditions, planning and everything an event changes read and write only that customer's
rows (:mod:`scheduler.simulation` takes each customer forward on their own for the same
reason). Rate limits are the exception: they count the sends of everyone, so a project
with ``email_rate`` or ``sms_rate`` is forecast in one process. Otherwise:

* :func:`split` copies the snapshot once per process. Each copy keeps what is due for its
  own customers only (customer ``id`` belongs to copy ``crc32(id) % parts``): the other
  customers' planned and sending messages are set aside as ``cancelled`` and their
  pending events as applied. The rows stay: every copy then numbers its new messages after
  the snapshot's, so the id a forecast prices its SMS with (the project's next message's,
  :class:`scheduler.simulation.ForecastDispatcher`) is the same in every copy. Nothing is due for them there, so the engine never
  comes to them.
* The copies are forecast side by side, each in a process of its own, and each process
  reads the figures of its own customers (:func:`owned_by`) from its copy: the forecast's
  decisions there are all theirs, and the statuses count their messages only.
  :class:`aftersale.forecast_figures.Tally` adds them up: every figure is a sum, and the
  spreads per customer are taken over the processes' per-customer peaks together, so
  they are the figures a forecast in one process reads.
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Callable
from pathlib import Path

from campaigns.models import PLANNED, SENDING

WORK = {"planned": PLANNED, "sending": SENDING}  # the statuses the engine moves on

# Below this many customers a forecast runs in one process: starting another costs more.
CUSTOMERS_PER_PROCESS = 2_000
# Each process holds a copy of the database on disk and up to a few hundred MB in memory.
MAX_PROCESSES = 8


def shard_of(customer_id: str, parts: int) -> int:
    """The copy (0 … ``parts`` - 1) that forecasts ``customer_id``; the same in every process."""
    return zlib.crc32(customer_id.encode()) % parts


def owned_by(part: int, parts: int) -> Callable[[str], bool]:
    """Whether a customer is one of those copy ``part`` of ``parts`` forecasts."""
    return lambda customer_id: shard_of(customer_id, parts) == part


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
