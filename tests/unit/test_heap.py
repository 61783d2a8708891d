"""long_lived_frozen: collections inside a tick skip what existed before it and come less
often, and only then."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator

import pytest

from campaigns.heap import YOUNG_THRESHOLD, long_lived_frozen


class Node:
    """Something that can sit in a reference cycle and be watched through a weak reference."""

    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref[Node]:
    """A two-node cycle only the cyclic collector can free; a weak reference to one node."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    """Nothing frozen, and no automatic collection: each test collects when it means to."""
    enabled = gc.isenabled()
    gc.unfreeze()
    gc.disable()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()


def test_freezes_for_the_block_only() -> None:
    before = gc.get_freeze_count()
    with long_lived_frozen():
        assert gc.get_freeze_count() > before
    assert gc.get_freeze_count() == 0


def test_garbage_made_inside_the_block_is_still_collected() -> None:
    with long_lived_frozen():
        ref = cycle()
        gc.collect()
        assert ref() is None


def test_older_garbage_waits_for_the_block_to_end() -> None:
    ref = cycle()  # garbage already, but not collected yet
    with long_lived_frozen():
        gc.collect()
        assert ref() is not None  # frozen: no collection looks at it
    gc.collect()
    assert ref() is None


def test_nested_blocks_share_one_freeze() -> None:
    with long_lived_frozen():
        with long_lived_frozen():
            pass
        assert gc.get_freeze_count() > 0  # the inner block left the outer's freeze alone
        ref = cycle()
        gc.collect()
        assert ref() is None
    assert gc.get_freeze_count() == 0


def test_overlapping_threads_unfreeze_once_the_last_leaves() -> None:
    entered, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def other() -> None:
        with long_lived_frozen():
            entered.set()
            release.wait(5)

    thread = threading.Thread(target=other)
    thread.start()
    assert entered.wait(5)
    with long_lived_frozen():
        pass
    seen.append(gc.get_freeze_count())  # the other thread is still inside
    release.set()
    thread.join(5)
    assert seen[0] > 0
    assert gc.get_freeze_count() == 0


def test_exceptions_still_unfreeze() -> None:
    with pytest.raises(RuntimeError), long_lived_frozen():
        raise RuntimeError("a failing tick")
    assert gc.get_freeze_count() == 0


def test_the_youngest_generation_is_collected_less_often_for_the_block_only() -> None:
    before = gc.get_threshold()
    with long_lived_frozen():
        with long_lived_frozen():
            assert gc.get_threshold() == (YOUNG_THRESHOLD, *before[1:])
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *before[1:])
    assert gc.get_threshold() == before


def test_a_higher_threshold_or_none_is_left_alone() -> None:
    before = gc.get_threshold()
    try:
        for thresholds in [(YOUNG_THRESHOLD * 3, 5, 5), (0, 10, 10)]:
            gc.set_threshold(*thresholds)
            with long_lived_frozen():
                assert gc.get_threshold() == thresholds
            assert gc.get_threshold() == thresholds
    finally:
        gc.set_threshold(*before)


def test_exceptions_still_restore_the_threshold() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), long_lived_frozen():
        raise RuntimeError("a failing tick")
    assert gc.get_threshold() == before
