"""`aftersale import` with files a careless shop produces: bad lines named, good lines land."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_cli import CUSTOMERS, project, run  # noqa: F401  (fixture)


def test_a_semicolon_file_is_not_blamed_on_strict(project: Path, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "customers.csv"
    path.write_text(CUSTOMERS.replace(",", ";"), encoding="utf-8")
    done = run("import", "customers", str(path), project=project, ok=False)
    assert done.returncode != 0
    assert f"{path}:1: header: the file is not comma-separated" in done.stderr
    assert "--strict" not in done.stderr


def test_poison_lines_are_named_and_the_good_ones_land(project: Path, tmp_path: Path) -> None:  # noqa: F811
    customers = tmp_path / "customers.csv"
    customers.write_bytes(
        CUSTOMERS.encode() + "c4,k@example.com,,K\xf6ln,X,de,,yes,no,\n".encode("latin-1")
    )
    done = run("import", "customers", str(customers), project=project, ok=False)
    assert done.returncode == 1
    assert (
        f"{customers}:4: email:" in done.stderr and f"{customers}:5: line: not UTF-8" in done.stderr
    )
    assert "customers: 2 imported" in done.stdout

    good = {"id": "e1", "type": "complaint_opened", "customer": "c1", "at": "2026-01-05T10:00:00Z"}
    bad = {**good, "id": "e2", "at": "0001-01-01T00:00:00+01:00"}
    deep = '{"id": "e3", "x": ' + "[" * 5000 + "]" * 5000 + "}"
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join([json.dumps(good), json.dumps(bad), deep]) + "\n", encoding="utf-8")
    done = run("import", "events", str(events), project=project, ok=False)
    assert done.returncode == 1
    assert f"{events}:2: at: " in done.stderr and f"{events}:3: json: nested deeper" in done.stderr
    assert "Traceback" not in done.stderr
    assert "events: 1 imported" in done.stdout
