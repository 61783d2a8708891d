"""A forecast in several processes: the customers split between copies of the snapshot,
forecast side by side, each process reading its own customers' figures, added up
(`aftersale.forecast_shards`, `aftersale.forecast_figures.Tally`).

On a generated shop (purchases, returns, complaints, ratings, consent changes, SMS) every
figure must be the same in one, two and three processes, and the same statuses as
`simulate --until` then produces; the project stays untouched. SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from aftersale.cli import write_project
from aftersale.demo import generate_shop
from aftersale.forecast import run_forecast
from aftersale.forecast_shards import (
    CUSTOMERS_PER_PROCESS,
    MAX_PROCESSES,
    processes_for,
    shard_of,
)
from campaigns.importing import import_customers, import_events
from tests.conftest import Harness
from tests.integration.test_forecast import dump, exported_statuses, files


def _shop(make_harness, tmp_path: Path, database_url: str) -> tuple[Harness, object]:
    defaults = tmp_path / "defaults"
    write_project(defaults)
    files_dir = tmp_path / "shop"
    files_dir.mkdir()
    shop = generate_shop(files_dir, customers=30, months=6, seed=5)
    h = make_harness(
        database_url=database_url, toml=(defaults / "aftersale.toml").read_text("utf-8")
    )
    import_customers(h.project.db, shop.customers)
    import_events(h.project.db, shop.events)
    return h, shop.until + timedelta(days=150)


def test_every_figure_is_the_same_in_one_two_and_three_processes(
    make_harness, tmp_path: Path, database_url: str
) -> None:
    h, until = _shop(make_harness, tmp_path, database_url)
    before, clock, listing = dump(h), h.project.simulated_now(), files(h)

    results = [run_forecast(h.project, until, processes=n) for n in (1, 2, 3)]

    shown = [(r.current.as_json(), r.current.weeks) for r in results]
    assert shown[1] == shown[0] and shown[2] == shown[0]
    one = results[0].current
    assert one.statuses["sent"] > 100 and one.statuses.get("skipped", 0) > 0
    assert one.cost["sms"]["segments"] > 0  # SMS rendered for their segments in every part
    assert one.per_customer["cap_pressure"]  # the caps held some back, in every part alike
    assert dump(h) == before
    assert h.project.simulated_now() == clock
    assert files(h) == listing
    h.simulate(until)
    assert results[1].current.statuses == exported_statuses(h)
    h.project.close()


def test_proposed_journeys_are_forecast_in_parts_alike(make_harness, tmp_path: Path) -> None:
    h, until = _shop(make_harness, tmp_path, "")
    proposed = tmp_path / "proposed"
    proposed.mkdir()
    for path in (h.directory / "journeys").glob("*.yaml"):
        text = path.read_text("utf-8").replace("item.inspection_interval_days or 90", "180d")
        (proposed / path.name).write_text(text, "utf-8")

    one, two = (run_forecast(h.project, until, proposed, processes=n) for n in (1, 2))

    assert one.as_json() == two.as_json()
    assert one.proposed is not None and one.proposed.statuses != one.current.statuses
    h.project.close()


def test_customers_are_shared_out_by_a_stable_hash() -> None:
    ids = [f"c{n}" for n in range(1_000)]
    parts = [shard_of(c, 3) for c in ids]
    assert parts == [shard_of(c, 3) for c in ids]  # the same in every process
    assert all(abs(parts.count(p) - 333) < 60 for p in range(3))


@pytest.mark.parametrize(
    ("customers", "cpus", "rated", "expected"),
    [
        (CUSTOMERS_PER_PROCESS - 1, 8, False, 1),  # too few to be worth a second process
        (CUSTOMERS_PER_PROCESS * 2, 8, False, 2),
        (CUSTOMERS_PER_PROCESS * 50, 2, False, 2),  # at most one per CPU
        (CUSTOMERS_PER_PROCESS * 50, 64, False, MAX_PROCESSES),  # and a few copies at most
        (CUSTOMERS_PER_PROCESS * 50, None, False, 1),
        (CUSTOMERS_PER_PROCESS * 50, 8, True, 1),  # rate limits count everyone together
    ],
)
def test_how_many_processes(customers: int, cpus: int | None, rated: bool, expected: int) -> None:
    assert processes_for(customers, cpus, rated) == expected


def test_each_copy_has_only_its_own_customers_work_due(make_harness, tmp_path: Path) -> None:
    """Nothing is due twice: each customer's planned messages and pending events are due
    in exactly one copy, and the other copies keep the rows (their ids included)."""
    import sqlite3

    from aftersale.forecast_shards import split

    h, _until = _shop(make_harness, tmp_path, "")
    h.simulate(h.project.simulated_now() + timedelta(days=30))  # planned messages, too
    h.project.close()
    snapshot = h.directory / "aftersale.db"

    def due(path: Path) -> tuple[set, set, int]:
        with sqlite3.connect(path) as conn:
            planned = set(
                conn.execute("SELECT id, customer_id FROM messages WHERE status = 'planned'")
            )
            pending = set(conn.execute("SELECT id, customer_id FROM events WHERE applied = 0"))
            top = conn.execute("SELECT max(id) FROM messages").fetchone()[0]
        return planned, pending, top

    planned, pending, top = due(snapshot)
    assert planned and pending
    copies = split(snapshot, 3)
    seen_planned, seen_pending = set(), set()
    for part, copy in enumerate(copies):
        mine_planned, mine_pending, mine_top = due(copy)
        assert {shard_of(c, 3) for _, c in mine_planned | mine_pending} <= {part}
        assert not (mine_planned & seen_planned) and not (mine_pending & seen_pending)
        seen_planned |= mine_planned
        seen_pending |= mine_pending
        assert mine_top == top  # new messages are numbered after the snapshot's
    assert seen_planned == planned and seen_pending == pending


def _children() -> list[int]:
    """This process's child processes (Linux)."""
    import os

    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
            found.append(int(entry))
    return found


def test_a_killed_forecast_process_fails_the_forecast_in_one_line(
    make_harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL one of the processes: the forecast fails with a clear error, its copies
    are deleted and the project is untouched."""
    import os
    import signal
    import tempfile
    import threading
    import time

    from aftersale.forecast import ForecastFailed

    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc to find the forecast's processes")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    h, until = _shop(make_harness, tmp_path, "")
    before, before_children = dump(h), set(_children())
    outcome: dict[str, BaseException] = {}

    def forecast() -> None:
        try:
            run_forecast(h.project, until, processes=2)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome["error"] = exc

    runner = threading.Thread(target=forecast)
    runner.start()
    deadline = time.monotonic() + 60
    killed = False
    while not killed and time.monotonic() < deadline and runner.is_alive():
        for pid in set(_children()) - before_children:
            if "spawn" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                os.kill(pid, signal.SIGKILL)
                killed = True
                break
        time.sleep(0.01)
    runner.join(120)
    assert killed, "no forecast process to kill"
    assert isinstance(outcome.get("error"), ForecastFailed), outcome
    assert "ended abruptly" in str(outcome["error"])
    assert list((tmp_path / "tmp").iterdir()) == []  # the snapshot and its copies are gone
    assert dump(h) == before
    h.project.close()
