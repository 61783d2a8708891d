"""bench_simulate: a forecast and a simulation over a generated shop, each in a process of its own.

    python -m bench bench_simulate [--quick]
    python -m bench.bench_simulate [--quick] [--customers N] [--base COMMIT] [--forecast-only]
    BENCH_SIMULATE_CUSTOMERS=100000 python -m bench bench_simulate

The demo generator (``aftersale.demo.generate_shop``) writes a shop of 5,000 customers
(``--quick``: 300; the targets below are for ``--customers 100000``, which takes hours
for ``simulate`` on a 2-core machine and is therefore not the default of ``make bench``)
with one year of purchases; it is imported once per tree compared, by that tree's own
code (an older commit could not open a database migrated past what it knows). Then,
each on a copy of that project and each in a fresh process (so that its peak RSS is its
own):

* ``forecast``: ``aftersale forecast`` from the first purchase to twelve months after the
  last one (targets: at most 5 minutes, peak RSS at most 1 GB at the full size);
* ``simulate``: ``aftersale simulate`` over the same span, which renders every message and
  writes the outbox; with ``--base COMMIT`` also the same command of that commit, checked
  out into a temporary worktree, alternately in one run, best of ``--rounds`` each
  (target: 3 times the base's rate).

Rates are decisions a second: rows of the message history written (deferrals, skips,
sends, cancellations), the engine's unit of work.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.compare import run_child, worktree

HERE = Path(__file__).resolve().parent.parent
FULL_CUSTOMERS = 5_000
QUICK_CUSTOMERS = 300
TARGETS = {"forecast_seconds": 300, "forecast_peak_rss_mb": 1024, "simulate_speedup_ratio": 3.0}

# Run in the child, against the tree on its PYTHONPATH: only names every version has.
CHILD = r"""
import json, re, sys, time
import sqlalchemy as sa
mode, directory, until = sys.argv[1:4]
from aftersale.app import Project
from aftersale.cli import app, parse_until
from campaigns.models import MessageDecision
import os
def cpu_now():  # this process's CPU and its finished children's (a forecast's workers)
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system
began, cpu = time.perf_counter(), cpu_now()
if mode == "forecast":
    from aftersale.forecast import run_forecast
    project = Project.open(directory)
    result = run_forecast(project, parse_until(until, "Europe/Berlin"))
    decisions = None
    sent = result.current.statuses.get("sent", 0)
    workers = getattr(result.current, "worker_peaks_mb", [])  # forecast in several processes
else:
    workers = []
    app(["-p", directory, "simulate", "--until", until], standalone_mode=False)
    project = Project.open(directory)
    with project.db.connect() as conn:
        decisions = conn.execute(sa.select(sa.func.count()).select_from(MessageDecision.__table__)).scalar()
        sent = conn.execute(sa.text("SELECT count(*) FROM messages WHERE status = 'sent'")).scalar()
seconds, cpu = time.perf_counter() - began, cpu_now() - cpu
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, from the benchmark's process.
status = open("/proc/self/status").read()
# The worker processes' peaks are added: together they are at most that much.
rss = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024 + sum(workers)
print("@@" + json.dumps({"seconds": seconds, "cpu_seconds": cpu, "decisions": decisions,
                         "sent": sent, "rss_mb": rss, "processes": max(1, len(workers))}))
"""


# Run in a child of each tree: the project written and the shop imported by that tree's
# code, so that a commit from before a migration opens a database it knows.
BUILD = r"""
import inspect, json, sys
from pathlib import Path
directory, customers, events = (Path(a) for a in sys.argv[1:4])
from aftersale.app import Project
from aftersale.cli import write_project
from campaigns.importing import import_customers, import_events
write_project(directory)
project = Project.open(directory)
region = {"region": "DE"} if "region" in inspect.signature(import_customers).parameters else {}
import_customers(project.db, customers, **region)
import_events(project.db, events)
project.close()
print("@@" + json.dumps({}))
"""


def build_shop(directory: Path, customers: int, tree: Path = HERE) -> str:
    """Write a project at ``directory`` with the generated shop imported by ``tree``'s
    code; returns the date to run up to. The shop's files go beside it, into
    ``<directory>-files``: the same for every tree, the generator being seeded."""
    from aftersale.demo import generate_shop

    files = directory.parent / f"{directory.name}-files"
    files.mkdir(parents=True, exist_ok=True)
    shop = generate_shop(files, customers=customers, months=12, seed=23)
    run_child(
        tree,
        BUILD,
        [str(directory), str(shop.customers), str(shop.events)],
        what="import",
        drop_env=("AFTERSALE_DATABASE_URL",),
    )
    return (shop.until + timedelta(days=365)).date().isoformat()


def measure(tree: Path, mode: str, template: Path, until: str, work: Path) -> dict[str, Any]:
    """Run ``mode`` with ``tree``'s code on a fresh copy of the project at ``template``."""
    directory = work / f"{mode}-{tree.name}"
    shutil.rmtree(directory, ignore_errors=True)
    shutil.copytree(template, directory)
    try:
        return run_child(
            tree,
            CHILD,
            [mode, str(directory), until],
            what=mode,
            drop_env=("AFTERSALE_DATABASE_URL",),
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run(
    quick: bool = False,
    customers: int | None = None,
    base: str | None = None,
    rounds: int = 2,
    forecast_only: bool = False,
) -> dict:
    """The figures: import, forecast and simulate (and the base's simulate, if asked).

    ``customers`` defaults to ``$BENCH_SIMULATE_CUSTOMERS``, else the full or quick size.
    """
    size = (
        customers
        or int(os.environ.get("BENCH_SIMULATE_CUSTOMERS") or 0)
        or (QUICK_CUSTOMERS if quick else FULL_CUSTOMERS)
    )
    figures: dict[str, Any] = {"customers": size}
    with tempfile.TemporaryDirectory(prefix="bench-simulate-") as tmp:
        work = Path(tmp)
        template = work / "shop"
        began = time.perf_counter()
        until = build_shop(template, size)
        figures["import_seconds"] = round(time.perf_counter() - began, 1)
        figures["until"] = until
        forecast = measure(HERE, "forecast", template, until, work)
        figures["forecast_seconds"] = round(forecast["seconds"], 1)
        figures["forecast_cpu_seconds"] = round(forecast["cpu_seconds"], 1)
        figures["forecast_sent"] = forecast["sent"]
        figures["forecast_peak_rss_mb"] = round(forecast["rss_mb"])
        figures["forecast_processes"] = forecast.get("processes", 1)
        if forecast_only:
            return figures
        if not base:
            figures.update(
                _simulate("simulate", [measure(HERE, "simulate", template, until, work)])
            )
            return figures
        sides: dict[str, list[dict[str, Any]]] = {"now": [], "base": []}
        with worktree(base) as tree:
            templates = {"now": template, "base": work / "shop-base"}
            build_shop(templates["base"], size, tree)
            for r in range(rounds):  # alternately, so both sides meet the same load
                order = [("now", HERE), ("base", tree)]
                for side, where in order if r % 2 == 0 else reversed(order):
                    sides[side].append(measure(where, "simulate", templates[side], until, work))
        figures.update(_simulate("simulate", sides["now"]))
        figures.update(_simulate("base_simulate", sides["base"]))
        figures["simulate_speedup_ratio"] = round(
            figures["simulate_decisions_per_s"] / figures["base_simulate_decisions_per_s"], 2
        )
        figures["same_outcome"] = len({m["sent"] for m in sides["now"] + sides["base"]}) == 1
    return figures


def _simulate(prefix: str, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The best of the rounds (the least disturbed by the machine's other work)."""
    best = min(rounds, key=lambda m: m["seconds"])
    return {
        f"{prefix}_seconds": round(best["seconds"], 1),
        f"{prefix}_seconds_all": [round(m["seconds"], 1) for m in rounds],
        f"{prefix}_cpu_seconds": round(best["cpu_seconds"], 1),
        f"{prefix}_decisions": best["decisions"],
        f"{prefix}_sent": best["sent"],
        f"{prefix}_decisions_per_s": round(best["decisions"] / best["seconds"], 1),
        f"{prefix}_peak_rss_mb": round(max(m["rss_mb"] for m in rounds)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_CUSTOMERS} customers")
    parser.add_argument("--customers", type=int, help="another size")
    parser.add_argument("--base", help="also simulate with this commit's code (e.g. main)")
    parser.add_argument("--rounds", type=int, default=2, help="simulations per side (default 2)")
    parser.add_argument(
        "--forecast-only", action="store_true", help="no simulate (for the 100,000-customer size)"
    )
    args = parser.parse_args()
    figures = run(args.quick, args.customers, args.base, args.rounds, args.forecast_only)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
