"""The README shows only what works: its commands parse, their options exist, and the
quick start's commands run against the project `make demo` leaves, naming customers the
demo prints."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from itertools import dropwhile
from pathlib import Path
from typing import Any

import pytest
import typer

from aftersale.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"
AFTERSALE = str(Path(sys.executable).with_name("aftersale"))
PLACEHOLDER = re.compile(r"^[A-Z][A-Z_.…]*$")
# `aftersale x y` / `z` / `--w`: siblings of the first command, or options of it.
SPANS = re.compile(r"`(aftersale [^`]+)`((?:\s*/\s*`[^`]+`)*)")


def _blocks(text: str, language: str) -> list[list[str]]:
    return [
        block.splitlines()
        for block in re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)
    ]


def _prose(text: str) -> str:
    return re.sub(r"```.*?```", "", text, flags=re.DOTALL)


def _tokens(command: str) -> list[str]:
    flat = command.replace("\\|", "|").replace("[", " ").replace("]", " ")
    return shlex.split(flat, comments=True)


def _option(command: Any, name: str) -> Any | None:
    flag = name.split("=", 1)[0]
    return next((p for p in command.params if flag in getattr(p, "opts", [])), None)


def resolve(root: Any, tokens: list[str]) -> tuple[Any, list[str]]:
    """Walk the command tree along ``tokens``; returns the command and what did not fit."""
    command, problems, skip = root, [], False
    for token in tokens[1:]:
        if skip:
            skip = False
            continue
        if token == "--help":
            continue
        if token.startswith("-"):
            param = _option(command, token)
            if param is None:
                problems.append(f"{command.name or 'aftersale'}: no option {token}")
            else:
                skip = "=" not in token and not getattr(param, "is_flag", False)
            continue
        if hasattr(command, "commands"):  # a group (typer ships its own click)
            sub = command.commands.get(token)
            if sub is not None:
                command = sub
            elif not PLACEHOLDER.match(token):
                problems.append(f"{command.name or 'aftersale'}: no command {token}")
    return command, problems


def _is_word(token: str) -> bool:
    return token.isalpha() and token.islower()


def readme_commands(text: str) -> list[list[str]]:
    """Every command line the README shows, siblings spelled out in full."""
    commands = []
    for match in SPANS.finditer(_prose(text)):
        first = _tokens(match.group(1))
        commands.append(first)
        for sibling in re.findall(r"`([^`]+)`", match.group(2)):
            rest = _tokens(sibling)
            if rest[0] == "aftersale":
                commands.append(rest)
            elif rest[0].startswith("-"):
                commands.append(first + rest)
            else:  # a sibling: the first command's path up to its last word, then this
                words = len(first) - len(list(dropwhile(_is_word, first)))
                commands.append(first[: max(words - 1, 1)] + rest)
    for block in _blocks(text, "sh"):
        commands.extend(_tokens(line) for line in block if line.startswith("aftersale "))
    return commands


@pytest.fixture(scope="module")
def root() -> Any:
    return typer.main.get_command(app)


def test_the_readme_names_only_commands_and_options_that_exist(root: Any) -> None:
    commands = readme_commands(README.read_text(encoding="utf-8"))
    assert len(commands) > 25
    problems = [p for c in commands for p in resolve(root, c)[1]]
    assert problems == []


def test_the_checker_catches_a_wrong_command_or_option(root: Any) -> None:
    text = "`aftersale jorneys` and `aftersale log --wide` / `--wdie`, `aftersale log export --fromat csv`"
    problems = [p for c in readme_commands(text) for p in resolve(root, c)[1]]
    assert problems == [
        "aftersale: no command jorneys",
        "log: no option --wdie",
        "export: no option --fromat",
    ]


def test_the_quick_start_commands_run_on_the_demo_project(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    env = {"COLUMNS": "80", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    demo = subprocess.run(
        [AFTERSALE, "demo", "--dir", "demo-project"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    tried = [line for block in _blocks(text, "sh") for line in block if "demo-project" in line]
    assert len(tried) >= 5
    printed = " ".join(demo.stdout.split())
    for line in tried:
        for customer in re.findall(r"\bc\d{4}\b", line):
            assert f"customer {customer}" in printed, f"the demo does not print {customer}"
        done = subprocess.run(
            [AFTERSALE, *shlex.split(line, comments=True)[1:]],
            cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip
        assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"
        assert done.stdout.strip() or (tmp_path / "log.csv").is_file(), line


def test_the_readme_stays_short_enough_to_read() -> None:
    # Detail belongs in docs/*.md, linked from the README (issue: "at most ~250 lines").
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move detail into docs/"
