"""Keeping Python's cyclic garbage collector off the objects that outlive a tick or an import.

A full (oldest-generation) collection walks every tracked object of the process: the
modules, SQLAlchemy's metadata and compiled statements, the journeys and the compiled
templates, which are all still there when the tick ends. A busy tick allocates enough to
trigger dozens of full collections, and each walks that whole heap again: applying 100,000
purchase events made about 60 of them, 5 of its 55 seconds.

:func:`long_lived_frozen` moves every object that exists when a tick starts into the
permanent generation (:func:`gc.freeze`), so that collections during the tick look only at
what the tick allocated, and gives them back (:func:`gc.unfreeze`) when it ends, so that
nothing stays exempt for longer than a tick. Both are constant-time list splices.

What the tick allocates is mostly a batch's rows, which live until the batch is written
and then go all at once, by reference counting. Collected every 700 allocations (Python's
default), they were walked again and again and soon promoted, and three full collections
per 5,000 purchase events walked them once more, each freeing next to nothing: 10% of the
time. During a tick the youngest generation is therefore collected every
:data:`YOUNG_THRESHOLD` allocations instead; cycles still go, a little later. At 10,000
the collections still took 5 % of applying 10,000 purchase events (45 of them, 0.12 s);
at 50,000 they take half that (8, none of the older generations). An import of events
or customers is the same shape (batches of rows that go all at once) and runs in the
same block: its collections were 20 % of importing 10,000 events. Nested and
concurrent blocks share one freeze and one threshold: the first in sets them, the last
out restores them.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 50_000

_lock = threading.Lock()
_depth = 0
_thresholds: tuple[int, ...] = ()


@contextmanager
def long_lived_frozen() -> Iterator[None]:
    """Exempt what already exists from the collections made inside the block, and collect
    the youngest generation less often meanwhile."""
    global _depth, _thresholds
    with _lock:
        if _depth == 0:
            gc.freeze()
            _thresholds = gc.get_threshold()
            young, *older = _thresholds
            if young:  # 0 means automatic collection is off: leave it so
                gc.set_threshold(max(young, YOUNG_THRESHOLD), *older)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                gc.set_threshold(*_thresholds)
                gc.unfreeze()
