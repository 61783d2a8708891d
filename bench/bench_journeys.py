"""How long `aftersale journeys validate` takes on twenty broken journeys.

Run: ``python -m bench bench_journeys``. Times the command in-process (settings, journeys,
templates) after a warm-up, and once as a fresh process, as a marketer runs it.
"""

from __future__ import annotations

import os
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
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "aftersale.cli", *command], capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)  # fmt: skip
        process = time.perf_counter() - began
    return {
        "validate 20 broken journeys, in-process (ms)": round(min(timings) * 1000, 1),
        "validate 20 broken journeys, fresh process (ms)": round(process * 1000, 1),
    }


if __name__ == "__main__":  # pragma: no cover
    print(run())
