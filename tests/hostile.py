"""Text an attacker controls, in the shapes that make a careless pattern cost the square of
its length, and a guard that a function gets through a megabyte of each."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs of one class of character, with and without the characters a pattern waits for.
LONG_SHAPES = ["a", "a://", "SG.", "x://u:p", "a:", "a@", "a@b", "a.", "-@", "+1234567",
               "Bearer ", "password=", "/l/"]  # fmt: skip

_PROGRAM = """
import importlib, sys
module, name = sys.argv[1].rsplit(".", 1)
function = getattr(importlib.import_module(module), name)
for unit in sys.argv[2:]:
    function(unit * (1_000_000 // len(unit)))
print("ok")
"""


def through_a_megabyte_of_each_shape(function: str) -> None:
    """Call ``function`` (``package.module.name``) on a megabyte of each of
    :data:`LONG_SHAPES` in a process of its own. The time limit guards against a hang
    (a quadratic pattern takes hours; a linear one about a second), it measures nothing."""
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM, function, *LONG_SHAPES],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.stdout.strip() == "ok", done.stderr
