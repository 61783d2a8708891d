"""A bad setting stops every command with one line per problem, its source and the allowed
values, and exit 2: never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aftersale.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def run(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "aftersale.cli", "--project", str(project), *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, env={**clean, **env}
    )


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    directory = tmp_path / "shop"
    assert run(tmp_path, "init", str(directory)).returncode == 0
    return directory


@pytest.mark.parametrize("command", [["journeys", "list"], ["log"], ["run", "--once"], ["serve"]])
def test_a_bad_variable_names_itself_and_the_allowed_values(shop: Path, command: list[str]):
    done = run(shop, *command, AFTERSALE_DISPATCH_LEASE_SECONDS="5")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "error: AFTERSALE_DISPATCH_LEASE_SECONDS=5: input should be greater than or equal "
        "to 10 (allowed: a whole number >= 10)"
    ]


def test_every_bad_toml_value_gets_its_own_line_with_file_and_line(shop: Path):
    toml = shop / "aftersale.toml"
    text = toml.read_text().replace('provider = "outbox"          # outbox | sendgrid | smtp',
                                    'provider = "sengrid"')  # fmt: skip
    dispatch = '[dispatch]\nlease_seconds = 3\nrender_processes = -1\nworkers = "many"\n'
    toml.write_text(text + "\n" + dispatch)
    lines = text.splitlines()
    provider_line = next(i for i, line in enumerate(lines, 1) if "sengrid" in line)
    done = run(shop, "journeys", "validate")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    problems = done.stderr.strip().splitlines()
    assert len(problems) == 4
    assert problems[0] == (
        f'error: {toml}:{provider_line}: email.provider = "sengrid": not an allowed value '
        "(allowed: 'outbox', 'sendgrid', 'smtp' or 'memory')"
    )
    assert f"{toml}:{len(lines) + 3}: dispatch.lease_seconds = 3:" in problems[1]
    # A number or "auto": both named, with the number's bounds.
    assert sorted(problems[2:]) == [
        f"error: {toml}:{len(lines) + 4}: dispatch.render_processes = -1: not an allowed value "
        "(allowed: a whole number >= 0 or 'auto')",
        f'error: {toml}:{len(lines) + 5}: dispatch.workers = "many": not an allowed value '
        "(allowed: a whole number >= 1 or 'auto')",
    ]


def test_a_bad_policy_value_names_its_line(shop: Path):
    toml = shop / "aftersale.toml"
    lines = toml.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("per = "))
    lines[index] = 'per = "a fortnight"'
    toml.write_text("\n".join(lines) + "\n")
    done = run(shop, "run", "--once")
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {toml}:{index + 1}: policy.caps[0].per: ")
    assert len(done.stderr.strip().splitlines()) == 1
    assert run(shop, "journeys", "validate").stderr == done.stderr
    assert "Traceback" not in done.stderr


def test_init_is_not_held_up_by_the_directory_it_runs_in(tmp_path: Path):
    (tmp_path / "aftersale.toml").write_text("[dispatch]\nworkers = 0\n")
    assert run(tmp_path, "init", str(tmp_path / "new")).returncode == 0


def test_settings_error_lists_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AFTERSALE_EMAIL_INLINER", "mjml")
    (tmp_path / "aftersale.toml").write_text("[stats]\nmargin = 2\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(tmp_path)
    assert caught.value.problems == [
        "AFTERSALE_EMAIL_INLINER=mjml: not an allowed value (allowed: 'css_inline' or 'premailer')",
        f"{tmp_path / 'aftersale.toml'}:2: stats.margin = 2: input should be less than or "
        "equal to 1 (allowed: a number > 0 and <= 1)",
    ]
    assert "AFTERSALE_EMAIL_INLINER" in os.environ
