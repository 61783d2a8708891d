"""The SQLite hand-off journal: append-only files per dispatcher, fences from lease expiry.

Two journals on one directory stand for two dispatchers (their locks are per open file,
so they exclude each other within one process as across processes).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from scheduler.handoff import FileJournal, lease_key

LEASE = datetime(2026, 3, 2, 9, 5, tzinfo=UTC)
LATER = LEASE + timedelta(minutes=5)


def row(message_id: int, lease: datetime = LEASE) -> SimpleNamespace:
    """A ``sending`` row whose lease ran out, as lease expiry reads it."""
    return SimpleNamespace(
        id=message_id, lease_until=lease, handed_over_at=None, provider=None,
        provider_message_id=None, details=None, locale=None, subject=None, reason=None,
    )  # fmt: skip


@pytest.fixture
def journals(tmp_path: Path):
    made: list[FileJournal] = []

    def make() -> FileJournal:
        journal = FileJournal(None, tmp_path / "aftersale.db.handoffs")  # type: ignore[arg-type]
        journal.open()
        made.append(journal)
        return journal

    yield make
    for journal in made:
        journal.close()


def accepted(message_id: int) -> dict:
    return {"_id": message_id, "provider": "memory", "provider_message_id": f"p{message_id}"}


def test_expiry_finds_marks_and_answers_and_fences_the_rest(journals) -> None:
    sender, leader = journals(), journals()
    assert sender.mark([(1, LEASE), (2, LEASE)], [], LEASE) == {1, 2}
    assert sender.mark([(3, LEASE)], [(accepted(1), LEASE)], LEASE) == {3}

    found = leader.entries([row(1), row(2), row(3), row(4)])

    assert found[1].handed_over and found[1].provider_message_id == "p1"
    assert found[2].handed_over and found[2].provider_message_id is None  # unknown
    assert found[3].handed_over
    assert not found[4].handed_over  # never handed over: released, and fenced
    # The sender, still alive, is too late for message 4 under that reservation ...
    assert sender.mark([(4, LEASE)], [], LEASE) == set()
    # ... but a later reservation of it is another matter.
    assert sender.mark([(4, LATER)], [], LATER) == {4}


def test_an_answer_counts_only_for_its_own_reservation(journals) -> None:
    sender, leader = journals(), journals()
    sender.mark([(1, LEASE)], [], LEASE)
    sender.mark([(2, LEASE)], [(accepted(1), LATER)], LEASE)  # another reservation's
    assert leader.entries([row(1)])[1].provider_message_id is None


def test_a_line_cut_short_does_not_count(journals) -> None:
    sender, leader = journals(), journals()
    sender.mark([(1, LEASE)], [], LEASE)
    (segment,) = sender._segments
    os.write(segment.fd, b"M 2 %d" % lease_key(LEASE))  # killed before the newline
    found = leader.entries([row(1), row(2)])
    assert found[1].handed_over and not found[2].handed_over


def test_a_recorded_batch_is_forgotten(journals) -> None:
    sender, leader = journals(), journals()
    sender.mark([(1, LEASE), (2, LEASE)], [(accepted(9), LEASE)], LEASE)  # 9: recorded
    (segment,) = sender._segments
    assert segment.path.stat().st_size > 0 and segment.pending == {1, 2}
    sender.forget([1, 2])
    assert segment.path.stat().st_size == 0
    assert not leader.entries([row(1)])[1].handed_over


def test_a_dead_dispatchers_files_are_read_then_removed_once_settled(journals) -> None:
    sender = journals()
    sender.mark([(1, LEASE)], [], LEASE)
    path = sender._segments[0].path
    sender.close()  # as if killed: the batch was never recorded, its file stays
    assert path.exists()

    leader = journals()
    assert leader.entries([row(1)])[1].handed_over
    leader.settled(LEASE - timedelta(seconds=1))  # a lease it names has not run out yet
    assert path.exists()
    leader.entries([row(1)])  # the next expiry
    leader.settled(LEASE)
    assert not path.exists()


def test_fences_are_dropped_when_a_journal_opens_with_no_other_alive(journals, tmp_path) -> None:
    fences = tmp_path / "aftersale.db.handoffs" / "fences"
    first, leader = journals(), journals()
    leader.entries([row(5)])
    assert fences.stat().st_size > 0
    third = journals()  # others are alive: the fences stay
    assert fences.stat().st_size > 0
    for journal in (first, leader, third):
        journal.close()
    journals()
    assert fences.stat().st_size == 0
