"""The web app under a real uvicorn on a loopback port, as ``aftersale serve`` runs it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from aftersale.app import Project
from aftersale.web import create_app, server_options


@contextmanager
def live_server(project: Project) -> Iterator[str]:
    """Serve ``project`` until the block ends; yields the base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(create_app(project), host="127.0.0.1", port=port,
                            log_level="warning", **server_options(project.settings))  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()
