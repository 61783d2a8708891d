"""Settings: ``aftersale.toml`` in the project directory, overridden by ``AFTERSALE_*``.

The TOML groups settings in tables (``[email] provider = "sendgrid"``); every key maps to a
flat setting named ``<table>_<key>`` (``email_provider``) whose environment variable is
``AFTERSALE_<TABLE>_<KEY>`` (``AFTERSALE_EMAIL_PROVIDER``). The ``[policy]`` table is kept
whole and validated by :class:`campaigns.policy.PolicyRules`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from aftersale.errors import ConfigurationError
from campaigns.policy import Fatigue, PolicyRules
from campaigns.value import SegmentRules

CONFIG_FILE = "aftersale.toml"
# E-mail providers whose webhooks report opens and clicks.
OPEN_REPORTING = frozenset({"sendgrid"})
NESTED_TABLES = {"policy", "segments", "alerts"}


class Settings(BaseSettings):
    """Everything aftersale can be told, with the defaults a new project runs on."""

    model_config = SettingsConfigDict(env_prefix="AFTERSALE_", extra="ignore")

    project_dir: Path = Path(".")
    database_url: str | None = None

    default_locale: str = "de"
    default_region: str = "DE"
    locales: list[str] = ["de", "en"]

    shop_name: str = "Elektro Sommer"
    shop_address: str = "Elektro Sommer GmbH · Hauptstraße 12 · 10115 Berlin"
    shop_support_email: str = "service@elektro-sommer.example"
    shop_support_phone: str = "+49 30 1234567"
    shop_url: str = "https://elektro-sommer.example"
    shop_imprint: str = (
        "Elektro Sommer GmbH, Amtsgericht Berlin HRB 000000, Geschäftsführung: A. Sommer"
    )

    email_provider: Literal["outbox", "sendgrid", "smtp", "memory"] = "outbox"
    email_from: str = "Elektro Sommer <service@elektro-sommer.example>"
    email_reply_to: str | None = None
    email_inliner: Literal["css_inline", "premailer"] = "css_inline"
    email_rate: str | None = None

    sms_provider: Literal["outbox", "twilio", "memory"] = "outbox"
    sms_rate: str | None = None
    # One text, or one per language ({de = "...", en = "..."}); marketing SMS end with it.
    sms_opt_out_hint: str | dict[str, str] | None = Field(
        default_factory=lambda: {"de": "Abmelden: STOP", "en": "Reply STOP to opt out"}
    )
    sms_help_text: str = "Elektro Sommer Service: +49 30 1234567. Abmelden mit STOP."
    sms_max_segments: int = 2
    # Shop links in an SMS go out as <public_url>/l/... and are redirected (and counted)
    # by `aftersale serve`, so public_url must be reachable by customers; false keeps them
    # as full campaign links.
    sms_short_links: bool = True

    sendgrid_api_key: str | None = None
    sendgrid_api_host: str = "https://api.sendgrid.com"
    sendgrid_webhook_public_key: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_base_url: str = "https://api.twilio.com"
    smtp_url: str | None = None
    shopify_webhook_secret: str | None = None
    api_token: str | None = None

    public_url: str = "http://127.0.0.1:8000"
    secret_key: str | None = None
    # The key before the last rotation: links signed with it keep working (README, Security).
    secret_key_previous: str | None = None

    dispatch_batch_size: int = Field(default=500, ge=1)
    dispatch_tick_seconds: float = Field(default=10.0, gt=0)
    dispatch_lease_seconds: int = Field(default=300, ge=10)
    dispatch_workers: int = Field(default=8, ge=1)
    dispatch_max_attempts: int = Field(default=5, ge=1)
    # Processes that render beside each dispatcher; 0 renders in its sending threads.
    dispatch_render_processes: Annotated[int, Field(ge=0)] | Literal["auto"] = "auto"

    # Admin console: what a message costs (in the shop's currency) for the return figures,
    # how long after a message a purchase counts as its follow-up, and session lifetime.
    email_price: str = "0.001"
    sms_segment_price: str = "0.075"
    attribution_days: int = Field(default=30, ge=1)
    # [stats]: the currency of every amount (prices, orders, offer costs), and the share of
    # revenue that is profit; 1 counts all revenue as profit.
    stats_currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    stats_margin: float = Field(default=1.0, gt=0, le=1)
    session_max_age: int = Field(default=8 * 3600, ge=60)
    # None: send the session cookie only over HTTPS when public_url is https.
    session_secure_cookie: bool | None = None
    # A console session unused this long ends (seconds); session_max_age ends any session.
    session_idle_timeout: int = Field(default=30 * 60, ge=60)

    # [web]: proxies whose X-Forwarded-For/-Proto are believed ("10.0.0.5,10.0.0.6" or
    # "*"); none by default, so a client cannot pose as another address. Bodies larger
    # than these are refused with 413 before they are read.
    web_forwarded_allow_ips: str | None = None
    web_max_webhook_bytes: int = Field(default=1024 * 1024, ge=1024)
    web_max_events_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)

    policy: dict[str, Any] = Field(
        default_factory=lambda: {
            "default_timezone": "Europe/Berlin",
            "quiet_hours": "20:00-09:00",
            "caps": [{"channel": "any", "max": 3, "per": "7d"}],
        }
    )

    # [segments]: the thresholds of customer.segment (campaigns.value.SegmentRules).
    segments: dict[str, Any] = Field(default_factory=dict)
    # [alerts]: early warning on complaint rates (campaigns.warning.AlertRules).
    alerts: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls))

    @property
    def config_path(self) -> Path:
        return self.project_dir / CONFIG_FILE

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.project_dir / 'aftersale.db').resolve()}"

    @property
    def outbox_dir(self) -> Path:
        return self.project_dir / "outbox"

    @property
    def journeys_dir(self) -> Path:
        return self.project_dir / "journeys"

    @property
    def templates_dir(self) -> Path:
        return self.project_dir / "templates"

    def policy_rules(self) -> PolicyRules:
        """The validated ``[policy]`` table; a bad value is an error naming its key and why.

        Without ``policy.default_region`` the project's ``default_region`` is the region of
        a customer with none of their own under ``public_holidays = "auto"``.
        """
        # Fatigue needs opens and clicks: on by default only where the provider reports them.
        fatigue = Fatigue() if self.email_provider in OPEN_REPORTING else None
        try:
            return PolicyRules.from_config(
                self.policy, default_region=self.default_region, fatigue=fatigue
            )
        except ValueError as exc:
            raise ConfigurationError(f"{self.config_path}: policy: {exc}") from exc

    def segment_rules(self) -> SegmentRules:
        """The validated ``[segments]`` table (campaigns.value)."""
        try:
            return SegmentRules.from_config(self.segments)
        except ValueError as exc:
            raise ConfigurationError(f"{self.config_path}: {exc}") from exc

    def require(self, name: str) -> Any:
        """The value of setting ``name``; a missing one is an error naming its variable."""
        value = getattr(self, name)
        if value in (None, ""):
            raise ConfigurationError(
                f"setting {name!r} is required: set AFTERSALE_{name.upper()} "
                f"or {name.split('_', 1)[0]}.{name.split('_', 1)[-1]} in {CONFIG_FILE}"
            )
        return value


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the project's aftersale.toml and flattens its tables into setting names."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        project = Path(
            self.current_state.get("project_dir") or os.environ.get("AFTERSALE_PROJECT", ".")
        )
        path = project / CONFIG_FILE
        if not path.exists():
            return {}
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{path}: {exc}") from exc
        return flatten(data)


def flatten(data: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key not in NESTED_TABLES:
            for sub, subvalue in value.items():
                flat[f"{key}_{sub}"] = subvalue
        else:
            flat[key] = value
    return flat


def load_settings(project_dir: Path | str | None = None, **overrides: Any) -> Settings:
    """Settings for a project directory; invalid values raise :class:`ConfigurationError`."""
    project = Path(project_dir or os.environ.get("AFTERSALE_PROJECT", "."))
    try:
        return Settings(project_dir=project, **overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigurationError(f"{project / CONFIG_FILE}: {problems}") from exc
