"""Rendering a reserved message, in the dispatcher's threads or in render processes.

Rendering a complete e-mail (its context, Jinja2, then css-inline) holds the GIL
throughout, so a dispatcher that renders in its own threads does all its work on one core.
A :class:`RenderPool` moves rendering to a few processes of its own: the dispatcher's
process claims, decides, sends and records while the next chunk renders on another core.

The pool starts lazily, with the first batch of at least ``min_batch`` messages (smaller
batches render in-process: the round trip would cost more than it saves). Processes are
started with ``spawn``, never ``fork`` (the dispatcher runs beside APScheduler's and the web
server's threads), and each builds its own renderer from a picklable factory; like any
``spawn`` user, a script that dispatches must guard its entry point with
``if __name__ == "__main__":``.

A render process that dies fails its pending chunks; their messages are rendered in the
dispatcher's process instead (:meth:`PendingRender.result` returns ``None``) and the next
batch starts a new pool. Only the dispatcher's process ever sends, so nothing is lost or
sent twice.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Literal

from channels import OutgoingMessage, pickled_by_fields
from scheduler.parts import ContextParts, LinkSettings
from templates import TemplateError, TemplateRenderer

log = logging.getLogger(__name__)

RendererFactory = Callable[[], TemplateRenderer]
# Past two render processes, the dispatcher's own work (claim, policy, send, record) is
# the bottleneck, not rendering.
MAX_AUTO_PROCESSES = 2
# Below this many messages a batch renders in-process: the IPC would cost more than it saves.
MIN_BATCH = 100
# Messages per round trip: small enough that sending starts soon, large enough to amortise IPC.
CHUNK_SIZE = 50


def render_processes(setting: int | Literal["auto"], *, dispatchers: int = 1) -> int:
    """How many render processes one of ``dispatchers`` dispatcher processes should use.

    ``"auto"``: the cores left over once every dispatcher has one, shared between them, at
    most :data:`MAX_AUTO_PROCESSES`; 0 when there is no spare core.
    """
    if setting != "auto":
        return setting
    spare = (os.cpu_count() or 1) - dispatchers
    return max(0, min(MAX_AUTO_PROCESSES, spare // max(1, dispatchers)))


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class RenderJob:
    """What rendering one message needs; picklable, so it can go to a render process."""

    message_id: int
    channel: str
    template: str
    category: str
    locale: str
    customer_id: str
    journey: str
    step: str
    context: Mapping[str, Any] | None = None
    # Or the parts to build it from, here or in a render process (scheduler.parts).
    parts: ContextParts | None = None
    links: LinkSettings | None = None
    # A step variant's subject (campaigns.experiments): one line, or one per language.
    subject: str | Mapping[str, str] | None = None

    def template_context(self) -> Mapping[str, Any]:
        if self.context is not None:
            return self.context
        assert self.parts is not None and self.links is not None, "a job needs a context"
        return self.parts.context(self.links)


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered message: what to send, the locale used and details for the send log."""

    outgoing: OutgoingMessage
    locale: str
    details: dict[str, Any]


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class RenderFailure:
    """A message that could not be rendered; ``trace`` and ``kind`` (the exception's type)
    are set for an unexpected exception."""

    message: str
    template: str
    file: str | None = None
    line: int | None = None
    trace: str | None = None
    kind: str | None = None

    def error(self) -> TemplateError:
        """The failure as the :class:`TemplateError` the send log records."""
        return TemplateError(self.message, template=self.template, file=self.file, line=self.line)


RenderOutcome = Rendered | RenderFailure


def render_message(renderer: TemplateRenderer, job: RenderJob) -> Rendered:
    """Render one message; raises :class:`TemplateError` (or anything a bug raises)."""
    marketing = job.category == "marketing"
    context = job.template_context()
    customer = context["customer"]
    if job.channel == "email":
        email = renderer.render_email(job.template, job.locale, context, marketing=marketing)
        headers: dict[str, str] = {}
        if marketing:
            headers["List-Unsubscribe"] = f"<{context['links']['unsubscribe']}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        outgoing = _outgoing(
            job,
            "email",
            to=customer["email"],
            subject=_subject(renderer, job, email, context),
            body_html=email.html,
            body_text=email.text,
            headers=headers,
        )
        return Rendered(outgoing, email.locale, {"html_bytes": len(email.html.encode())})
    sms = renderer.render_sms(job.template, job.locale, context, marketing=marketing)
    outgoing = _outgoing(job, "sms", to=customer["phone"], body_text=sms.body)
    details: dict[str, Any] = {"segments": sms.segments, "encoding": sms.encoding}
    if sms.links:
        details["links"] = list(sms.links)
    return Rendered(outgoing, sms.locale, details)


def _subject(renderer: TemplateRenderer, job: RenderJob, email: Any, context: Any) -> str:
    """The template's subject, or the variant's in the e-mail's language."""
    source = job.subject
    if isinstance(source, Mapping):
        lang = email.locale.split("_")[0].split("-")[0]
        source = source.get(email.locale) or source.get(lang) or next(iter(source.values()))
    if not source:
        return email.subject
    return renderer.render_subject(source, email.locale, context, template=job.template)


def _outgoing(job: RenderJob, kind: str, **content: Any) -> OutgoingMessage:
    return OutgoingMessage(
        message_id=str(job.message_id),
        kind=kind,
        category=job.category,
        customer_id=job.customer_id,
        journey=job.journey,
        step=job.step,
        **content,
    )


def render(renderer: TemplateRenderer, job: RenderJob) -> RenderOutcome:
    """Render one message; a failure is returned, never raised (it fails only its message)."""
    try:
        return render_message(renderer, job)
    except TemplateError as exc:
        return RenderFailure(exc.message, exc.template, exc.file, exc.line)
    except Exception as exc:  # noqa: BLE001 - one broken message never stops the batch
        return RenderFailure(
            f"{type(exc).__name__}: {exc}",
            job.template,
            trace=traceback.format_exc(),
            kind=type(exc).__name__,
        )


# ------------------------------------------------------------- in the render process

_renderer: TemplateRenderer | None = None


def _start_process(factory: RendererFactory) -> None:
    global _renderer
    _renderer = factory()


def _is_started() -> bool:
    return _renderer is not None


def _render_chunk(jobs: Sequence[RenderJob]) -> list[RenderOutcome]:
    assert _renderer is not None, "the pool's initializer builds the renderer"
    return [render(_renderer, job) for job in jobs]


# ------------------------------------------------------------- in the dispatcher


@dataclass(frozen=True, slots=True)
class PendingRender:
    """One message of a chunk that a render process is working on."""

    chunk: Future[list[RenderOutcome]]
    index: int

    def result(self) -> RenderOutcome | None:
        """Wait for the message; ``None`` if the pool failed it (render it in-process)."""
        try:
            return self.chunk.result()[self.index]
        except Exception as exc:  # noqa: BLE001 - a dead process, a cancelled or unpicklable chunk
            if self.index == 0:
                log.warning("render process failed a chunk (%r); rendering it here", exc)
            return None


class RenderPool:
    """A few processes that render chunks of a batch while the dispatcher sends."""

    def __init__(
        self,
        factory: RendererFactory,
        *,
        processes: int,
        min_batch: int = MIN_BATCH,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        if processes < 1:
            raise ValueError("a render pool needs at least one process")
        self.factory = factory
        self.processes = processes
        self.min_batch = min_batch
        self.chunk_size = chunk_size
        self._executor: ProcessPoolExecutor | None = None
        self._started: Future[bool] | None = None
        self._disabled = False

    def submit(self, jobs: Sequence[RenderJob]) -> list[PendingRender] | None:
        """Send ``jobs`` to the render processes; ``None``: render them in-process.

        The first batch big enough starts the processes; its chunks wait for them.
        """
        if len(jobs) < self.min_batch or self._disabled:
            return None
        executor = self._executor or self._start()
        size = self.chunk_size
        try:
            chunks = [
                executor.submit(_render_chunk, jobs[i : i + size])
                for i in range(0, len(jobs), size)
            ]
        except BrokenProcessPool:
            self._discard()
            return None
        return [PendingRender(chunks[i // size], i % size) for i in range(len(jobs))]

    def _start(self) -> ProcessPoolExecutor:
        executor = ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_process,
            initargs=(self.factory,),
        )
        self._executor, self._started = executor, executor.submit(_is_started)
        return executor

    def _discard(self) -> None:
        """Forget a broken pool; the next batch starts a new one, unless it never started."""
        assert self._executor is not None and self._started is not None
        if self._started.done() and self._started.exception() is None:
            log.warning("a render process died; starting new ones")
        else:
            # Its renderer cannot be built there, so it would not be next time either.
            log.error("render processes could not start; rendering in-process from now on")
            self._disabled = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = self._started = None

    def close(self) -> None:
        """Stop the render processes (after the chunks they are working on)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        self._executor = self._started = None
