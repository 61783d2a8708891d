"""`make bench`: run every benchmark, print a table, write bench/results.json.

Each benchmark module exposes ``run(**kw) -> dict`` returning its figures; a figure named
``ratio`` (or ending in ``_ratio``) is compared with the module's ``TARGETS``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

BENCHMARKS = [
    "bench.bench_core",
    "bench.bench_render",
    "bench.bench_policy",
    "bench.bench_admin",
    "bench.bench_providers",
    "bench.bench_scale",
    "bench.bench_journeys",
    "bench.bench_simulate",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help="run only these (e.g. bench_core)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    console = Console()
    results: dict[str, dict] = {}
    for module_name in BENCHMARKS:
        short = module_name.rsplit(".", 1)[-1]
        if args.names and short not in args.names:
            continue
        module = importlib.import_module(module_name)
        console.print(f"[bold]{short}[/] …")
        began = time.perf_counter()
        figures = module.run(quick=args.quick)
        figures["seconds"] = round(time.perf_counter() - began, 1)
        results[short] = figures
        _print(console, short, figures)
    out = Path(__file__).with_name("results.json")
    meta = {"python": platform.python_version(), "machine": platform.machine(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2, default=str))
    console.print(f"wrote {out}")


def _print(console: Console, name: str, figures: dict) -> None:
    table = Table("figure", "value", title=name)
    for key, value in figures.items():
        table.add_row(key, f"{value:,.1f}" if isinstance(value, float) else str(value))
    console.print(table)


if __name__ == "__main__":
    main()
