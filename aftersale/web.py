"""The web app: health, webhooks, the preference (unsubscribe) page, the HTTP API and the admin console."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from aftersale.admin.auth import CurrentUser, api_user, page_user
from aftersale.admin.mount import mount_admin
from aftersale.app import Project
from aftersale.middleware import BodyLimit, SecurityHeaders
from aftersale.preferences import router as preferences_router
from aftersale.settings import Settings
from aftersale.webhooks import router as webhooks_router
from channels.redaction import redact_logs


def create_app(project: Project) -> FastAPI:
    """One FastAPI app for a project; ``aftersale serve`` runs it under uvicorn."""
    redact_logs()  # no password or token in any log line, under any server
    # The API documents describe every console route: they are shown after a login only.
    app = FastAPI(
        title="aftersale", version="0.1.0", docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.project = project
    app.include_router(preferences_router)
    app.include_router(webhooks_router)
    mount_admin(app, project)
    _documents(app)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(BodyLimit, limit_for=partial(body_limit, project.settings))
    https = project.settings.public_url.startswith("https://")
    app.add_middleware(SecurityHeaders, https=https)
    return app


# Swagger UI and ReDoc load their scripts from a CDN and start with an inline script.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com "
    "https://cdn.redoc.ly; worker-src blob:; frame-ancestors 'none'"
)


PageUser = Annotated[CurrentUser, Depends(page_user)]
ApiUser = Annotated[CurrentUser, Depends(api_user)]


def _documents(app: FastAPI) -> None:
    @app.get("/openapi.json", include_in_schema=False)
    def openapi(_user: ApiUser) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    def docs(_user: PageUser) -> HTMLResponse:
        page = get_swagger_ui_html(openapi_url="/openapi.json", title="aftersale API")
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page

    @app.get("/redoc", include_in_schema=False)
    def redoc(_user: PageUser) -> HTMLResponse:
        page = get_redoc_html(openapi_url="/openapi.json", title="aftersale API")
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page


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
