"""The bundles of one dispatch batch: what its carriers may take along, read in one query.

:mod:`campaigns.bundling` decides which messages go out together; this finds them for the
dispatcher. For a batch's per-item messages (journeys with a bundle window) one query reads
those customers' planned messages of the same journeys and steps — the candidates — and
the messages already bundled into a message of the batch: a carrier whose send is retried
renders them again. A batch without per-item messages runs no query at all.

On PostgreSQL a candidate outside the batch may be claimed by another dispatcher that now
waits for this customer's advisory lock; updating the candidate would wait for that
dispatcher in turn, a deadlock. So candidates outside the batch are locked with ``SKIP
LOCKED``, and a carrier with a candidate in its window that another dispatcher holds is
left planned and untouched: that dispatcher finds it as a candidate once it has the
customer, and takes it along.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence, Set
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaigns.bundling import bundle_key, bundled_with
from campaigns.engine import messages_t
from campaigns.idlists import id_in
from campaigns.models import PLANNED

__all__ = ["BatchBundles", "candidates_query"]

_m = messages_t.c


def candidates_query(columns: Sequence[Any]) -> Any:
    """The statement :meth:`BatchBundles.load` runs, reading ``columns`` and ``bundled_into``.

    Journey, step and status are compared as text (``|| ''``) so that SQLite's planner, which
    keeps no statistics, finds the rows through the customer's index rather than through
    every message of the journey's step or every planned message. Candidates are planned
    and those carried skipped: neither has a send time (the transition table clears it on
    both moves), so the index is read at its unsent part, not the customer's sent history.
    """
    return sa.select(*columns, _m.bundled_into).where(
        id_in(_m.customer_id, "customers"),
        _m.sent_at.is_(None),
        id_in(_m.journey_id.concat(""), "journeys"),
        id_in(_m.step.concat(""), "steps"),
        sa.or_(_m.status.concat("") == PLANNED, id_in(_m.bundled_into, "carriers")),
    )


LOCK_CANDIDATES = (
    sa.select(_m.id).where(id_in(_m.id), _m.status == PLANNED).with_for_update(skip_locked=True)
)


class BatchBundles:
    """One batch's candidates for bundling, and which of them its carriers took."""

    def __init__(
        self,
        windows: dict[tuple[str, str, str], timedelta],
        candidates: Iterable[Any],
        carried: dict[int, list[Any]],
        batch: set[int],
        held: Set[int] = frozenset(),
    ) -> None:
        self._windows = windows
        self._pool: dict[tuple[str, str, str], dict[int, Any]] = defaultdict(dict)
        for row in candidates:
            self._pool[bundle_key(row)][row.id] = row
        self._carried = carried
        self._taken: set[int] = set()
        self._held = held
        #: Rows outside the batch whose items a carrier may name: the context must load them.
        self.outside = [
            row for pool in self._pool.values() for row in pool.values() if row.id not in batch
        ] + [row for rows in carried.values() for row in rows]

    @classmethod
    def none(cls) -> BatchBundles:
        return cls({}, (), {}, set())

    @classmethod
    def load(
        cls,
        conn: Connection,
        statement: Any,
        rows: Sequence[Any],
        window_of: Callable[[Any], timedelta | None],
        *,
        postgres: bool,
    ) -> BatchBundles:
        """Read the candidates of ``rows`` (claimed, planned, under their customers' locks)."""
        windows: dict[tuple[str, str, str], timedelta] = {}
        by_version: dict[tuple[str, int], timedelta | None] = {}  # asked once per version
        for row in rows:
            version = (row.journey_id, row.journey_version)
            if version not in by_version:
                by_version[version] = window_of(row)
            if (window := by_version[version]) is not None:
                windows.setdefault(bundle_key(row), window)
        if not windows:
            return cls.none()
        found = conn.execute(
            statement,
            {
                "customers": sorted({key[0] for key in windows}),
                "journeys": sorted({key[1] for key in windows}),
                "steps": sorted({key[2] for key in windows}),
                "carriers": [row.id for row in rows if bundle_key(row) in windows],
            },
        ).all()
        batch = {row.id for row in rows}
        candidates, carried = [], defaultdict(list)
        for row in found:
            if row.bundled_into is not None:
                carried[row.bundled_into].append(row)
            elif bundle_key(row) in windows:
                candidates.append(row)
        held: set[int] = set()
        outside = [row.id for row in candidates if row.id not in batch]
        if postgres and outside:
            free = set(conn.execute(LOCK_CANDIDATES, {"ids": outside}).scalars())
            held = set(outside) - free
        return cls(windows, candidates, dict(carried), batch, held)

    @property
    def active(self) -> bool:
        """Whether any message of the batch may bundle: else :meth:`taken`,
        :meth:`held_elsewhere` and :meth:`pull` answer no and :meth:`settle` does nothing."""
        return bool(self._windows)

    def window(self, row: Any) -> timedelta | None:
        return self._windows.get(bundle_key(row))

    def taken(self, row: Any) -> bool:
        """Whether a carrier of this batch took ``row`` along."""
        return row.id in self._taken

    def settle(self, row: Any) -> None:
        """``row`` is decided on its own: it is no longer anyone's candidate."""
        pool = self._pool.get(bundle_key(row))
        if pool is not None:
            pool.pop(row.id, None)

    def held_elsewhere(self, row: Any) -> bool:
        """Whether another dispatcher holds a candidate in ``row``'s window (PostgreSQL)."""
        window = self.window(row)
        if not self._held or window is None:
            return False
        pool = self._pool.get(bundle_key(row), {})
        return any(abs(pool[i].due_at - row.due_at) <= window for i in self._held if i in pool)

    def pull(self, carrier: Any, now: datetime, eligible: Callable[[Any], bool]) -> list[Any]:
        """The candidates ``carrier`` takes along now (see :func:`bundled_with`)."""
        window = self.window(carrier)
        if window is None:
            return []
        pool = self._pool[bundle_key(carrier)]
        free = [row for i, row in pool.items() if i not in self._held]
        pulled = bundled_with(carrier, free, window, now, eligible)
        for row in pulled:
            del pool[row.id]
            self._taken.add(row.id)
        self._carried.setdefault(carrier.id, []).extend(pulled)
        return pulled

    def carried(self, carrier: Any) -> list[Any]:
        """Every message ``carrier`` carries: taken before (a retried send) and now."""
        return self._carried.get(carrier.id, [])
