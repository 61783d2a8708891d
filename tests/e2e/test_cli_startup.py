"""Commands that need no database never load its stack: `journeys validate` answers in well
under a second because the CLI does not import SQLAlchemy, SQLModel, alembic and the models
(about three quarters of a second) before it starts. Not a timing test: each command runs in
a fresh interpreter, as the `aftersale` entry point runs it, and the test fails as soon as a
module imported at the top of the CLI, or of what `journeys validate` uses, pulls one back in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.broken_journeys import MISTAKES, write_broken

ROOT = Path(__file__).resolve().parents[2]

# The database stack, and what only sending needs: the calendar of every country (the
# policy checks a region in the holidays registry) and the phone number metadata.
NOT_LOADED = (
    "sqlalchemy",
    "sqlmodel",
    "alembic",
    "campaigns.models",
    "aftersale.database",
    "holidays.countries",
    "phonenumbers",
)

# What the `aftersale` entry point (`aftersale.cli:app`) does, then which of NOT_LOADED
# the command loaded, as the last line of standard error.
PROBE = """\
import json, sys
from aftersale.cli import app
sys.argv = ["aftersale", *sys.argv[1:]]
try:
    app()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
loaded = [m for m in {names!r} if m in sys.modules]
print(json.dumps({{"exit": code, "loaded": loaded}}), file=sys.stderr)
"""


def probe(*args: str) -> tuple[int, list[str], str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "300"}
    env.pop("AFTERSALE_PROJECT", None)
    command = [sys.executable, "-c", PROBE.format(names=NOT_LOADED), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    *said, last = done.stderr.strip().splitlines() or [""]
    try:
        report = json.loads(last)
    except json.JSONDecodeError:
        pytest.fail(f"the probe did not finish:\n{done.stderr}")
    return report["exit"], report["loaded"], done.stdout + "\n".join(said)


@pytest.fixture(scope="module")
def broken_shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    shop = tmp_path_factory.mktemp("imports") / "shop"
    code, _, output = probe("init", str(shop))
    assert code == 0, output
    for path in (shop / "journeys").glob("*.yaml"):
        path.unlink()
    write_broken(shop / "journeys")
    return shop


def test_validating_twenty_broken_journeys_loads_no_database(broken_shop: Path):
    code, loaded, output = probe("--project", str(broken_shop), "journeys", "validate")
    assert code == 1, output
    assert output.count(": error: ") == len(MISTAKES) == 20, output
    assert loaded == [], f"`journeys validate` imported {loaded}"


def test_validating_the_built_in_journeys_loads_no_database(tmp_path: Path):
    shop = tmp_path / "shop"
    assert probe("init", str(shop))[0] == 0
    code, loaded, output = probe("--project", str(shop), "journeys", "validate")
    assert code == 0 and "5 journeys valid" in output, output
    assert loaded == [], f"`journeys validate` imported {loaded}"


@pytest.mark.parametrize(
    "args",
    [["--help"], ["journeys", "--help"], ["templates", "copy", "thank_you"], ["init", "new"]],
)
def test_commands_without_a_database_load_none(broken_shop: Path, tmp_path: Path, args):
    args = [str(tmp_path / a) if a == "new" else a for a in args]
    code, loaded, output = probe("--project", str(broken_shop), *args)
    assert code == 0, output
    assert loaded == [], f"`aftersale {' '.join(args)}` imported {loaded}"


def test_a_settings_error_still_ends_in_one_line_and_exit_2(broken_shop: Path, tmp_path: Path):
    shop = tmp_path / "shop"
    assert probe("init", str(shop))[0] == 0
    toml = shop / "aftersale.toml"
    toml.write_text(toml.read_text() + "\n[dispatch]\nlease_seconds = 3\n")
    code, loaded, output = probe("--project", str(shop), "journeys", "validate")
    assert code == 2, output
    assert "Traceback" not in output
    [line] = output.strip().splitlines()
    assert line.startswith(f"error: {toml}:") and "dispatch.lease_seconds = 3" in line
    assert loaded == []


def test_validating_against_imported_data_loads_no_database(tmp_path: Path):
    """With customers imported, `validate` warns about a name no row carries (reading the
    embedded database with the standard library) and still loads no database stack."""
    shop = tmp_path / "shop"
    assert probe("init", str(shop))[0] == 0
    customers = tmp_path / "customers.csv"
    customers.write_text(
        "id,email,locale,email_consent,city\nc1,anna@example.org,de,yes,Berlin\n",
        encoding="utf-8",
    )
    code, _, output = probe("--project", str(shop), "import", "customers", str(customers))
    assert code == 0, output
    (shop / "journeys" / "berlin.yaml").write_text(
        "id: berlin\ntrigger: {event: purchase}\naudience: 'customer.stadt == \"Berlin\"'\n"
        "steps:\n  - id: one\n    send: {channel: email, template: thank_you}\n",
        encoding="utf-8",
    )
    code, loaded, output = probe("--project", str(shop), "journeys", "validate")
    assert "stadt" in output and "city" in output, output  # the warning and its hint
    assert loaded == [], f"`journeys validate` imported {loaded}"
