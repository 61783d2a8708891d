"""`aftersale forecast`: the engine on a throwaway copy — the same statuses `simulate` then
produces, the project's database, clock and outbox untouched, proposed journeys side by side,
and bad input refused in one line before anything runs."""

from __future__ import annotations

import io
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel
from typer.testing import CliRunner

from aftersale.cli import app as cli
from aftersale.customer_value import resting
from aftersale.forecast import ForecastInputError, run_forecast
from aftersale.sendlog import LogFilter, write_export
from campaigns.models import reading
from tests.conftest import Harness, item, purchase, utc

UNTIL = utc("2026-09-30T00:00:00")
FAST = "inspection_interval_days"


def shop(h: Harness, *, again: bool = True) -> None:
    """Four customers, two of them buying again within days (``again``: the caps hold some)."""
    h.customers(
        [
            {"id": f"c{n}", "email": f"c{n}@example.com", "first_name": "Anna",
             "phone": f"+4915112345{n:03d}", "sms_consent": "yes"}
            for n in range(4)
        ]
    )  # fmt: skip
    events = []
    for n in range(4):
        events.append(purchase(f"e{n}", f"c{n}", "2026-01-07T10:00:00+01:00", f"o{n}",
                               item(warranty_months=24, **{FAST: 90})))  # fmt: skip
    for n in range(2 if again else 0):
        for k in range(1, 4):
            events.append(purchase(f"e{n}-{k}", f"c{n}", f"2026-01-0{7 + k}T10:00:00+01:00",
                                   f"o{n}-{k}", item(f"SKU-{k}", **{FAST: 90})))  # fmt: skip
    h.events(events)


def dump(h: Harness) -> dict[str, list]:
    """Every row of every table, in key order: the project's database as a value."""
    tables: dict[str, list] = {}
    with h.project.db.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            order = list(table.primary_key.columns) or list(table.columns)
            tables[table.name] = [tuple(r) for r in conn.execute(sa.select(table).order_by(*order))]
        if conn.dialect.name == "sqlite":  # and its schema: the copy drops indexes of its own
            schema = sa.text("SELECT type, name, sql FROM sqlite_master ORDER BY name")
            tables["sqlite_master"] = [tuple(r) for r in conn.execute(schema)]
    return tables


def files(h: Harness) -> list[str]:
    return sorted(str(p.relative_to(h.directory)) for p in h.directory.rglob("*"))


def exported_statuses(h: Harness) -> dict[str, int]:
    out = io.StringIO()
    with reading(h.project.db) as conn:
        write_export(conn, LogFilter(), out, "jsonl")
    return dict(Counter(json.loads(line)["status"] for line in out.getvalue().splitlines()))


def test_statuses_equal_simulate_and_the_project_is_untouched(harness: Harness) -> None:
    shop(harness)
    before, clock, listing = dump(harness), harness.project.simulated_now(), files(harness)

    result = run_forecast(harness.project, UNTIL)

    assert dump(harness) == before
    assert harness.project.simulated_now() == clock
    assert files(harness) == listing  # no outbox, no journal, no copy left behind
    assert harness.email.sent == [] and harness.sms.sent == []
    harness.simulate(UNTIL)
    assert result.current.statuses == exported_statuses(harness)
    assert result.current.statuses["sent"] > 0
    sent = sum(j.sent for j in result.current.journeys)
    assert sent == len(harness.email.sent) + len(harness.sms.sent)


def test_the_figures_count_what_the_caps_held_back(sqlite_harness: Harness) -> None:
    shop(sqlite_harness)
    result = run_forecast(sqlite_harness.project, UNTIL).as_json()

    assert set(result) == {
        "until",
        "statuses",
        "journeys",
        "per_customer",
        "cost",
        "resting",
        "proposed",
    }
    assert result["proposed"] is None
    deferred = Counter()
    for row in result["journeys"]:
        deferred.update(row["deferred"])
    caps = result["per_customer"]["cap_pressure"]
    assert caps and all(reason.startswith("frequency_cap") for reason in caps)
    assert sum(c["deferrals"] for c in caps.values()) == sum(
        n for reason, n in deferred.items() if reason.startswith("frequency_cap")
    )
    skipped = Counter()
    for row in result["journeys"]:
        skipped.update(row["skipped"])
    assert (
        sum(c["skipped"] for c in caps.values())
        == sum(n for reason, n in skipped.items() if reason.startswith("frequency_cap"))
        > 0
    )
    week = result["per_customer"]["7d"]
    assert week["max"] <= 2 + 1  # two e-mails a week, and the transactional thank-yous
    assert result["per_customer"]["customers"] == 4
    assert week["at_max"] >= 1
    emails = sum(r["sent"] for r in result["journeys"] if r["channel"] == "email")
    assert result["cost"]["email"]["messages"] == emails


def proposal(h: Harness, tmp_path: Path, interval: str) -> Path:
    """The project's journeys with the inspection interval set to ``interval``."""
    proposed = tmp_path / "proposed"
    shutil.copytree(h.directory / "journeys", proposed)
    path = proposed / "inspection_invitation.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("item.inspection_interval_days or 90", interval), "utf-8")
    return proposed


def test_proposed_journeys_with_a_longer_inspection_interval(
    sqlite_harness: Harness, tmp_path: Path
) -> None:
    h = sqlite_harness
    shop(h, again=False)
    until = utc("2027-01-31T00:00:00")
    result = run_forecast(h.project, until, proposal(h, tmp_path, "180d"))

    def invites(figures) -> int:
        return sum(j.sent for j in figures.journeys
                   if (j.journey, j.channel) == ("inspection_invitation", "email"))  # fmt: skip

    # Every 90 days within the first year: four invitations an item; every 180: two.
    assert invites(result.current) == 4 * 4
    assert invites(result.proposed) == 2 * 4
    shown = result.as_json()["proposed"]
    [diff] = [d for d in shown["differences"]["journeys"]
              if (d["journey"], d["channel"]) == ("inspection_invitation", "email")]  # fmt: skip
    assert diff["sent"] == -8
    assert shown["differences"]["statuses"]["sent"] < 0


def run(h: Harness, *args: str, code: int) -> str:
    done = CliRunner().invoke(
        cli,
        ["-p", str(h.directory), *args],
        env={"COLUMNS": "80", "AFTERSALE_DATABASE_URL": str(h.project.db.url)},
    )
    assert done.exit_code == code, (done.output, done.exception)
    return done.output


def test_the_command_prints_tables_and_json(sqlite_harness: Harness) -> None:
    shop(sqlite_harness)
    table = run(sqlite_harness, "forecast", "--until", "2026-09-30", code=0)
    assert "thank_you" in table and "contacts per customer" in table and "cost" in table
    # At 80 columns a long reason or cap wraps within its column: nothing is cut off, and
    # every column of the caps' table has its heading.
    assert "…" not in table and all(len(line) <= 80 for line in table.splitlines())
    assert "→ waiting" in table and "skipped bundled 4" in table
    shown = json.loads(run(sqlite_harness, "forecast", "--until", "2026-09-30",
                           "--format", "json", code=0))  # fmt: skip
    assert shown["until"].startswith("2026-09-30T21:59:59")  # end of day in Berlin, as UTC
    assert shown["statuses"]["sent"] > 0


@pytest.mark.parametrize("case", ["past", "missing", "file", "invalid", "empty", "date", "bytes"])
def test_bad_input_is_refused_in_one_line(sqlite_harness: Harness, tmp_path: Path, case) -> None:
    h = sqlite_harness
    shop(h)
    h.simulate(utc("2026-02-01T00:00:00"))
    args = ["forecast", "--until", "2026-06-30"]
    if case == "past":
        args[2] = "2026-01-15"
    elif case == "date":
        args[2] = "next tuesday"
    elif case == "missing":
        args += ["--journeys", str(tmp_path / "nowhere")]
    elif case == "file":
        (tmp_path / "plain.yaml").write_text("id: x\n", encoding="utf-8")
        args += ["--journeys", str(tmp_path / "plain.yaml")]
    elif case == "empty":
        (tmp_path / "empty").mkdir()
        args += ["--journeys", str(tmp_path / "empty")]
    elif case == "bytes":  # saved in Latin-1 by an editor: "Prüfung" with a lone 0xfc
        proposed = proposal(h, tmp_path, "180d")
        broken = proposed / "inspection_invitation.yaml"
        broken.write_bytes(broken.read_bytes() + "# Prüfung\n".encode("latin-1"))
        args += ["--journeys", str(proposed)]
    else:
        proposed = proposal(h, tmp_path, "180d")
        broken = proposed / "inspection_invitation.yaml"
        broken.write_text(broken.read_text("utf-8").replace("channel: email", "channel: fax"))
        args += ["--journeys", str(proposed)]
    before, listing = dump(h), files(h)

    output = run(h, *args, code=2)

    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    if case == "invalid":
        assert "inspection_invitation.yaml:" in lines[0]
    if case == "bytes":
        last = len(broken.read_bytes().splitlines())
        assert f"inspection_invitation.yaml:{last}: " in lines[0], lines[0]
        assert "not UTF-8 text: byte 0xfc at column 5" in lines[0], lines[0]
    assert dump(h) == before and files(h) == listing


def test_a_forecast_needs_events(sqlite_harness: Harness) -> None:
    with pytest.raises(ForecastInputError, match="import events first"):
        run_forecast(sqlite_harness.project, UNTIL)


def test_the_simulation_dispatcher_decides_as_the_dispatcher_does(make_harness) -> None:
    """Cap histories in memory, the next instant asked in one statement: every message
    ends the same, at the same time, as with the dispatcher reading everything back."""
    from scheduler.dispatcher import Dispatcher
    from scheduler.simulation import SimulationDispatcher

    ends = []
    for kind in (Dispatcher, SimulationDispatcher):
        h = make_harness()
        shop(h)
        h.simulate(UNTIL, kind=kind)
        # By the message's own key: a simulation deciding several instants at once plans
        # follow-ups of different customers in another order, so ids may differ.
        ends.append(
            sorted(
                (m.enrollment_id, m.step, m.occurrence, m.status, m.reason, m.due_at, m.sent_at)
                for m in h.messages()
            )
        )
        h.project.close()
    assert ends[0] == ends[1]
    assert any(r and r.startswith("frequency_cap") for *_, r, _, _ in ends[0])  # caps held


def test_the_forecast_counts_the_customers_resting_at_its_end(harness: Harness) -> None:
    """Issue: the forecast shows how many customers rest (offers held) at its end — the
    same count `stats` gives after `simulate --until` the same date."""
    shop(harness, again=False)
    harness.events([
        {"id": "r1", "type": "satisfaction_rated", "customer": "c2",
         "at": "2026-09-20T10:00:00+02:00", "value": 1},
        {"id": "r2", "type": "satisfaction_rated", "customer": "c3",
         "at": "2026-09-21T10:00:00+02:00", "value": 4},
    ])  # fmt: skip
    result = run_forecast(harness.project, UNTIL)
    assert result.current.resting == {"unsatisfied": 1, "fatigue": 0}
    assert result.as_json()["resting"] == {"unsatisfied": 1, "fatigue": 0}
    harness.simulate(UNTIL)
    with reading(harness.project.db) as conn:
        assert resting(harness.project, conn, UNTIL) == result.current.resting
