"""The render-process setting, how "auto" sizes the pool, and failures turned into results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aftersale.errors import ConfigurationError
from aftersale.settings import load_settings
from scheduler.rendering import RenderFailure, RenderJob, RenderPool, render, render_processes
from templates import TemplateError, TemplateRenderer, sample_context


@pytest.mark.parametrize(
    ("cores", "dispatchers", "expected"),
    [(1, 1, 0), (2, 1, 1), (2, 2, 0), (4, 1, 2), (8, 1, 2), (8, 3, 1), (8, 8, 0)],
)
def test_auto_uses_the_cores_the_dispatchers_leave(
    monkeypatch: pytest.MonkeyPatch, cores: int, dispatchers: int, expected: int
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert render_processes("auto", dispatchers=dispatchers) == expected


def test_a_number_is_taken_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert render_processes(3, dispatchers=2) == 3
    assert render_processes(0) == 0


def test_the_setting_reads_auto_or_a_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(tmp_path).dispatch_render_processes == "auto"
    (tmp_path / "aftersale.toml").write_text("[dispatch]\nrender_processes = 0\n")
    assert load_settings(tmp_path).dispatch_render_processes == 0
    monkeypatch.setenv("AFTERSALE_DISPATCH_RENDER_PROCESSES", "3")
    assert load_settings(tmp_path).dispatch_render_processes == 3
    monkeypatch.setenv("AFTERSALE_DISPATCH_RENDER_PROCESSES", "-1")
    with pytest.raises(ConfigurationError, match="AFTERSALE_DISPATCH_RENDER_PROCESSES=-1"):
        load_settings(tmp_path)


def _job(template: str = "thank_you") -> RenderJob:
    return RenderJob(
        message_id=1,
        channel="email",
        template=template,
        category="transactional",
        locale="de",
        customer_id="c1",
        journey="thank_you",
        step="thanks",
        context=sample_context("de"),
    )


class BrokenRenderer(TemplateRenderer):
    def render_email(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")


def test_a_template_error_is_returned_not_raised() -> None:
    outcome = render(TemplateRenderer(), _job("no_such_template"))
    assert isinstance(outcome, RenderFailure) and outcome.trace is None
    assert isinstance(outcome.error(), TemplateError)
    assert outcome.error().template == "no_such_template"


def test_an_unexpected_exception_is_returned_with_its_traceback() -> None:
    outcome = render(BrokenRenderer(), _job())
    assert isinstance(outcome, RenderFailure)
    assert str(outcome.error()) == "thank_you: RuntimeError: boom"
    assert outcome.trace is not None and "RuntimeError: boom" in outcome.trace


def test_a_small_batch_renders_in_process_without_starting_anything() -> None:
    pool = RenderPool(TemplateRenderer, processes=1, min_batch=2)
    assert pool.submit([_job()]) is None
    pool.close()


def test_a_pool_needs_a_process() -> None:
    with pytest.raises(ValueError, match="at least one process"):
        RenderPool(TemplateRenderer, processes=0)


def test_a_render_process_imports_neither_the_database_nor_the_engine() -> None:
    """What a render process loads to unpickle its jobs and render them: the templates and
    the context's parts, not SQLAlchemy, the models or the journey engine (which took
    most of its start-up time, on the path of the first batch of every dispatcher)."""
    probe = (
        "import sys, pickle, scheduler.rendering, scheduler.parts, campaigns.customers; "
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sqlalchemy', 'sqlmodel', 'pydantic', 'alembic') or m in "
        "('campaigns.engine', 'campaigns.models', 'campaigns.journeys', 'campaigns.store'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.stdout.split() == []
