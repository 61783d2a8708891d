"""Side by side: run benchmarks on this tree and on an earlier commit, alternately, in one run.

    python -m bench.compare BASE [bench_core bench_providers …] [--quick] [--rounds N]

BASE is any commit (``main~5``, a tag, an id). Its tree is checked out into a temporary
worktree and each benchmark runs in a process of its own, once per round on each side, in
alternating order, so that both sides meet the same machine, the same load and the same
warm caches. Both sides use this virtualenv's packages; each imports its own source.

For every numeric figure the table shows the best of the rounds on each side (rates: the
highest; times and sizes: the lowest) and ``now / base``. A ratio above 1 is better for
rates (``per_s`` figures, ``ratio``) and worse for times and sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent.parent
HIGHER_IS_BETTER = ("per_s", "ratio")
PROBE = (
    "import importlib, json, sys; "
    "m = importlib.import_module('bench.' + sys.argv[1]); "
    "print('@@' + json.dumps(m.run(quick=sys.argv[2] == '1'), default=str))"
)


def run_once(tree: Path, name: str, quick: bool) -> dict[str, Any]:
    """One benchmark's figures, measured in a fresh process importing ``tree``'s source."""
    return run_child(tree, PROBE, [name, "1" if quick else "0"], what=name)


def run_child(
    tree: Path, code: str, args: list[str], *, what: str, drop_env: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Run ``code`` (``python -c``) in a fresh process importing ``tree``'s source; it
    prints its figures as one JSON line after ``@@``, which this returns."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    for name in drop_env:
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("@@")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{what} failed in {tree}:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][2:])


def best(values: list[float], key: str) -> float:
    return max(values) if key.endswith(HIGHER_IS_BETTER) else min(values)


@contextmanager
def worktree(commit: str) -> Iterator[Path]:
    """``commit``'s tree, checked out into a temporary worktree for the block."""
    with tempfile.TemporaryDirectory(prefix="bench-base-") as tmp:
        tree = Path(tmp) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-q", str(tree), commit], cwd=HERE, check=True
        )
        try:
            yield tree
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(tree)], cwd=HERE, check=False
            )


def compare(base: str, names: list[str], quick: bool, rounds: int, console: Console) -> None:
    with worktree(base) as base_tree:
        for name in names:
            sides: dict[str, list[dict[str, Any]]] = {"base": [], "now": []}
            for r in range(rounds):
                order = [("base", base_tree), ("now", HERE)]
                for side, tree in order if r % 2 == 0 else reversed(order):
                    console.print(f"[dim]{name} round {r + 1}/{rounds}: {side}[/]")
                    sides[side].append(run_once(tree, name, quick))
            console.print(_table(name, base, sides))


def _table(name: str, base: str, sides: dict[str, list[dict[str, Any]]]) -> Table:
    table = Table("figure", f"base ({base})", "now", "now / base", title=name)
    for key, value in sides["now"][0].items():
        numbers = [s.get(key) for s in sides["base"]]
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers):
            table.add_row(key, "—", f"{value:,}", "")
            continue
        then = best(numbers, key)
        now = best([s[key] for s in sides["now"]], key)
        ratio = f"{now / then:.3f}" if then else ""
        table.add_row(key, f"{then:,}", f"{now:,}", ratio)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("base", help="the commit to compare with (e.g. main~5)")
    parser.add_argument("names", nargs="*", default=["bench_core"], help="benchmarks to run")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--rounds", type=int, default=2, help="runs per side (default 2)")
    args = parser.parse_args()
    compare(args.base, args.names, args.quick, args.rounds, Console())


if __name__ == "__main__":
    main()
