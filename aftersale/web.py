"""The web app: health, webhooks, unsubscribe pages, the HTTP API and the admin console."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import FastAPI

from aftersale.admin.mount import mount_admin
from aftersale.app import Project
from aftersale.middleware import BodyLimit
from aftersale.settings import Settings
from aftersale.webhooks import router as webhooks_router
from channels.redaction import redact_logs


def create_app(project: Project) -> FastAPI:
    """One FastAPI app for a project; ``aftersale serve`` runs it under uvicorn."""
    redact_logs()  # no password or token in any log line, under any server
    app = FastAPI(title="aftersale", version="0.1.0")
    app.state.project = project
    app.include_router(webhooks_router)
    mount_admin(app, project)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(BodyLimit, limit_for=partial(body_limit, project.settings))
    return app


def body_limit(settings: Settings, path: str) -> int:
    """The largest body a path takes: the events API more, everything else a webhook's."""
    if path == "/api/events":
        return settings.web_max_events_bytes
    return settings.web_max_webhook_bytes


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options: forwarded headers are believed only from the configured proxies."""
    proxies = (settings.web_forwarded_allow_ips or "").strip()
    return {
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies or "",
        "server_header": False,
    }
