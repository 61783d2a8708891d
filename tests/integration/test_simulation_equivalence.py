"""The simulation's shortcuts decide exactly as the dispatcher does, tick by tick.

A generated shop (the demo's: purchases, returns, complaints, ratings, consent changes,
customers in several time zones) is simulated twice over the same span: once by the plain
:class:`Dispatcher`, which ticks at every instant something is due, and once by the
:class:`SimulationDispatcher`, which decides many instants in one batch and takes each
customer forward up to their own next event. Every message must end the same, every
decision be made at the same time with the same outcome, and every event be applied at
the same time.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from aftersale.cli import write_project
from aftersale.demo import generate_shop
from campaigns.importing import import_customers, import_events
from campaigns.store import decisions_t, events_t, messages_t
from scheduler import simulation
from scheduler.dispatcher import Dispatcher
from scheduler.simulation import SimulationDispatcher


def _outcome(h: Any) -> dict[str, Any]:
    """Messages, decisions and events by their own keys (ids differ between the runs:
    follow-ups of different customers are planned in another order)."""
    m, d, e = messages_t.c, decisions_t.c, events_t.c
    key = (m.enrollment_id, m.step, m.occurrence)
    with h.project.db.connect() as conn:
        messages = sorted(
            tuple(r)
            for r in conn.execute(
                sa.select(*key, m.status, m.reason, m.due_at, m.sent_at, m.updated_at,
                          m.locale, m.subject, m.variant, m.attempts)
            )
        )  # fmt: skip
        decisions = sorted(
            tuple(r)
            for r in conn.execute(
                sa.select(*key, d.at, d.action, d.reason, d.due_before, d.due_after).join(
                    messages_t, m.id == d.message_id
                )
            )
        )
        events = sorted(
            tuple(r) for r in conn.execute(sa.select(e.id, e.applied, e.applied_at, e.failed_at))
        )
    return {"messages": messages, "decisions": decisions, "events": events}


@pytest.mark.parametrize(
    ("seed", "cohorts"),
    [(7, False), (11, False), (7, True)],
    ids=["seed-7", "seed-11", "seed-7-cohorts"],
)
def test_the_simulation_decides_a_generated_shop_as_the_dispatcher_does(
    make_harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, cohorts: bool
) -> None:
    """``cohorts``: batches of two customers and cohorts of eight (a third of the shop),
    so that customers wait for a place and take those of customers done."""
    defaults = tmp_path / "defaults"
    write_project(defaults)
    toml = (defaults / "aftersale.toml").read_text(encoding="utf-8")
    if cohorts:
        assert "[dispatch]" not in toml
        toml += "\n[dispatch]\nbatch_size = 2\n"
        monkeypatch.setattr(simulation, "COHORT", 8)
    files = tmp_path / f"shop-{seed}"
    files.mkdir()
    shop = generate_shop(files, customers=24, months=6, seed=seed)
    until = shop.until + timedelta(days=120)
    outcomes = []
    for kind in (Dispatcher, SimulationDispatcher):
        h = make_harness(toml=toml)
        import_customers(h.project.db, shop.customers)
        import_events(h.project.db, shop.events)
        h.simulate(until, kind=kind)
        outcomes.append(_outcome(h))
        h.project.close()
    plain, simulated = outcomes
    assert len(plain["messages"]) > 100 and len(plain["decisions"]) > 150
    statuses = {row[3] for row in plain["messages"]}
    assert {"sent", "skipped"} <= statuses  # the shop exercises more than sending
    assert simulated["events"] == plain["events"]
    assert simulated["messages"] == plain["messages"]
    assert simulated["decisions"] == plain["decisions"]
