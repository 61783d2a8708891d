"""Settings: ``aftersale.toml`` in the project directory, overridden by ``AFTERSALE_*``.

The TOML groups settings in tables (``[email] provider = "sendgrid"``); every key maps to a
flat setting named ``<table>_<key>`` (``email_provider``) whose environment variable is
``AFTERSALE_<TABLE>_<KEY>`` (``AFTERSALE_EMAIL_PROVIDER``). The ``[policy]`` table is kept
whole and validated by :class:`campaigns.policy.PolicyRules`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from aftersale.errors import ConfigurationError
from campaigns.policy import Fatigue, PolicyRules
from campaigns.value import SegmentRules
from templates.textfiles import NotText, read_text

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
    # Sending threads per dispatcher; "auto": 8 on SQLite, 32 on PostgreSQL (scheduler.handoff).
    dispatch_workers: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
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
            line = policy_line(self.config_path, str(exc))
            where = f"{self.config_path}:{line}" if line else str(self.config_path)
            raise ConfigurationError(f"{where}: {exc}") from exc

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
            data = tomllib.loads(read_text(path))
        except NotText as exc:
            raise ConfigurationError(f"{path}:{exc.line}: {exc}") from exc
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
    """Settings for a project directory; invalid values raise :class:`SettingsError`, one
    problem a line, each naming where the value came from and what is allowed."""
    project = Path(project_dir or os.environ.get("AFTERSALE_PROJECT", "."))
    try:
        return Settings(project_dir=project, **overrides)
    except ValidationError as exc:
        raise SettingsError(settings_problems(exc, project / CONFIG_FILE, overrides)) from exc


class SettingsError(ConfigurationError):
    """One or more settings are invalid; ``problems`` holds one line for each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def settings_problems(exc: ValidationError, path: Path, overrides: Mapping[str, Any]) -> list[str]:
    """One line per invalid setting: its source (``aftersale.toml:12`` or the variable),
    the value given, what went wrong and the values allowed."""
    by_field: dict[str, list[Any]] = {}
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else "settings"
        by_field.setdefault(name, []).append(err)
    return [_problem(name, errs, path, overrides) for name, errs in by_field.items()]


def _problem(name: str, errors: list[Any], path: Path, overrides: Mapping[str, Any]) -> str:
    variable = _variable(name)
    if name in overrides:
        source = f"setting {name} = {overrides[name]!r}"
    elif variable is not None:
        source = f"{variable}={os.environ[variable]}"
    else:
        line, key = toml_location(path, name)
        where = f"{path}:{line}" if line else str(path)
        source = f"{where}: {key} = {_toml_value(errors[0].get('input'))}"
    allowed = allowed_values(name, errors)
    plain = len(errors) == 1 and errors[0]["type"] != "literal_error"
    reason = _lower_first(errors[0]["msg"]) if plain else "not an allowed value"
    return f"{source}: {reason}" + (f" (allowed: {allowed})" if allowed else "")


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _variable(name: str) -> str | None:
    """The ``AFTERSALE_*`` variable that set ``name``, if one did (names ignore case)."""
    wanted = f"AFTERSALE_{name}".upper()
    return next((key for key in os.environ if key.upper() == wanted), None)


def _toml_value(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value).lower() if isinstance(
        value, bool) else repr(value)  # fmt: skip


_KINDS = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}
_BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def allowed_values(name: str, errors: list[Any]) -> str:
    """What ``name`` accepts, read from the setting's type and bounds."""
    field = Settings.model_fields.get(name)
    choices = [str(e["ctx"]["expected"]) for e in errors if e["type"] == "literal_error"]
    bounds = _bounds(field.metadata if field is not None else [])
    if not bounds and field is not None:  # a number's bounds beside a choice ("auto")
        bounds = _bounds(_union_constraints(field.annotation))
    if not bounds:
        bounds = _bounds([e.get("ctx") or {} for e in errors])
    kind = _kind(field.annotation) if field is not None else None
    described = " and ".join(bounds)
    if kind and (bounds or not choices):
        described = f"{kind} {described}".strip()
    return " or ".join(filter(None, [described, *choices]))


def _union_constraints(annotation: Any) -> list[Any]:
    """The constraints of ``Annotated[int, Field(ge=1)]`` inside a union with a literal."""
    return [
        constraint
        for member in getattr(annotation, "__args__", ())
        for info in getattr(member, "__metadata__", ())
        for constraint in getattr(info, "metadata", ())
    ]


def _bounds(constraints: list[Any]) -> list[str]:
    found = []
    for item in constraints:
        for key, sign in _BOUNDS.items():
            value = item.get(key) if isinstance(item, dict) else getattr(item, key, None)
            if value is not None:
                found.append(f"{sign} {value:g}" if isinstance(value, float) else f"{sign} {value}")
    return found


def _kind(annotation: Any) -> str | None:
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        base = getattr(candidate, "__origin__", None) or candidate
        if base in _KINDS:
            return _KINDS[base]
    return None


_TABLE = re.compile(r"^\s*\[+\s*([A-Za-z0-9_.-]+)\s*\]+")
_KEY = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")


def toml_location(path: Path, name: str) -> tuple[int | None, str]:
    """The line of flat setting ``name`` (``dispatch_lease_seconds``) in a TOML file and the
    key as written there (``dispatch.lease_seconds``); (None, name) when not found."""
    try:
        text = read_text(path)
    except (OSError, ValueError):
        return None, name
    table = ""
    for number, line in enumerate(text.splitlines(), start=1):
        if header := _TABLE.match(line):
            table = header.group(1)
        elif key := _KEY.match(line):
            written = f"{table}.{key.group(1)}" if table else key.group(1)
            if name in (written, written.replace(".", "_")):
                return number, written
    return None, name


_POLICY_KEY = re.compile(r"^policy\.([a-z_]+)(?:\[(\d+)\](?:\.([a-z_]+))?)?")


def policy_line(path: Path, message: str) -> int | None:
    """The line of the ``[policy]`` key a policy error names (``policy.caps[1].per: ...``)."""
    match = _POLICY_KEY.match(message)
    if match is None:
        return None
    key, index, sub = match.groups()
    if index is None:
        return toml_location(path, f"policy.{key}")[0]
    try:
        lines = read_text(path).splitlines()
    except (OSError, ValueError):
        return None
    headers = [n for n, line in enumerate(lines, 1) if line.strip().startswith(f"[[policy.{key}]]")]
    if int(index) >= len(headers):
        return None
    start = headers[int(index)]
    for number in range(start + 1, len(lines) + 1):
        text = lines[number - 1]
        if _TABLE.match(text):
            break
        if sub and (found := _KEY.match(text)) and found.group(1) == sub:
            return number
    return start
