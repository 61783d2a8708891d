"""How long `aftersale journeys validate` takes on twenty broken journeys.

Run: ``python -m bench bench_journeys``. Times the command in-process (settings, journeys,
templates) after a warm-up, and as a fresh process, as a marketer runs it: best of the
rounds, wall and CPU, with bytecode cached as an installed package has it. A fresh process
pays for every module the CLI imports, so this is where importing the database stack, or
not, shows.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from typer.testing import CliRunner

from tests.broken_journeys import write_broken

ROOT = Path(__file__).resolve().parents[1]


def run(*, quick: bool = False, rounds: int = 5) -> dict[str, float]:
    """Milliseconds per validation in-process (best of ``rounds``) and in a fresh process."""
    from aftersale.cli import app

    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "shop"
        assert CliRunner().invoke(app, ["init", str(project)]).exit_code == 0
        for path in (project / "journeys").glob("*.yaml"):
            path.unlink()
        write_broken(project / "journeys")
        command = ["--project", str(project), "journeys", "validate"]
        timings = []
        for _ in range(2 if quick else rounds):
            began = time.perf_counter()
            done = CliRunner().invoke(app, command)
            timings.append(time.perf_counter() - began)
            assert done.exit_code == 1 and done.output.count(": error: ") == 20, done.output
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: compiled once, then cached
        walls, cpus = [], []
        for _ in range(1 + (2 if quick else rounds)):  # the first writes the bytecode
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            began = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "aftersale.cli", *command],
                                  capture_output=True, text=True, env=env, check=False)  # fmt: skip
            walls.append(time.perf_counter() - began)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            assert done.returncode == 1 and done.stdout.count(": error: ") == 20, done.stderr
    return {
        "validate 20 broken journeys, in-process (ms)": round(min(timings) * 1000, 1),
        "validate 20 broken journeys, fresh process (ms)": round(min(walls[1:]) * 1000, 1),
        "validate 20 broken journeys, fresh process CPU (ms)": round(min(cpus[1:]) * 1000, 1),
    }


if __name__ == "__main__":  # pragma: no cover
    print(run())
