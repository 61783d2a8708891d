"""The web app under a real uvicorn on a loopback port, as ``aftersale serve`` runs it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aftersale.admin.testing import ConsoleServer
from aftersale.app import Project
from aftersale.web import create_app, server_options


@contextmanager
def live_server(project: Project) -> Iterator[str]:
    """Serve ``project`` with the options of ``aftersale serve`` until the block ends."""
    with ConsoleServer(create_app(project), **server_options(project.settings)) as server:
        yield server.url
