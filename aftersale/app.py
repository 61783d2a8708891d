"""Wiring: one :class:`Project` builds every part from the settings, once."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aftersale.errors import ConfigurationError
from aftersale.settings import Settings, load_settings

# Each part is imported when it is first built: a command that needs only the settings,
# the journeys and the templates (`journeys validate`) never loads the database stack.
if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from aftersale.keys import SigningKeys
    from campaigns.engine import Engine as JourneyEngine
    from campaigns.journeys import JourneyProblem, LoadedJourney
    from campaigns.policy import ContactPolicy
    from channels import Channel
    from scheduler.clock import Clock, SimulatedClock
    from scheduler.dispatcher import Dispatcher
    from scheduler.rendering import RendererFactory, RenderPool
    from scheduler.workers import Chore
    from templates import TemplateRenderer

CLOCK_KEY = "simulated_clock"


def __getattr__(name: str) -> Any:
    """``state_t`` and ``events_t``, the tables of the clock, built on first use."""
    if name in ("state_t", "events_t"):
        from campaigns.models import Event, ProjectState

        return (ProjectState if name == "state_t" else Event).__table__
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class Project:
    """A project directory with its settings, database and the parts built from them."""

    settings: Settings
    channel_overrides: dict[str, Channel] = field(default_factory=dict)

    @classmethod
    def open(cls, directory: Path | str | None = None, **overrides: object) -> Project:
        return cls(load_settings(directory, **overrides))

    @property
    def directory(self) -> Path:
        return self.settings.project_dir

    @cached_property
    def db(self) -> Engine:
        from aftersale.database import create_engine, migrate

        engine = create_engine(self.settings.effective_database_url)
        migrate(engine)
        return engine

    @cached_property
    def policy(self) -> ContactPolicy:
        from campaigns.policy import ContactPolicy

        return ContactPolicy(self.settings.policy_rules())

    @cached_property
    def renderer(self) -> TemplateRenderer:
        return self.renderer_factory()

    @property
    def sending_threads(self) -> int:
        """Sending threads per dispatcher (``dispatch.workers``); "auto" takes as many as
        the database's hand-off journal serves best (:mod:`scheduler.handoff`)."""
        from scheduler.handoff import journal_for

        workers = self.settings.dispatch_workers
        return journal_for(self.db).threads if workers == "auto" else workers

    @property
    def renderer_factory(self) -> RendererFactory:
        """Builds a renderer from the settings; picklable, for render processes."""
        from templates import ShopInfo, TemplateRenderer

        s = self.settings
        shop = ShopInfo(
            name=s.shop_name,
            address=s.shop_address,
            support_email=s.shop_support_email,
            support_phone=s.shop_support_phone,
            url=s.shop_url,
            imprint=s.shop_imprint,
        )
        templates = s.templates_dir if s.templates_dir.is_dir() else None
        return partial(
            TemplateRenderer,
            project_dir=templates,
            default_locale=s.default_locale,
            inliner=s.email_inliner,
            shop=shop,
            sms_opt_out_hint=s.sms_opt_out_hint,
            sms_max_segments=s.sms_max_segments,
        )

    def load_journeys(self) -> tuple[list[LoadedJourney], list[JourneyProblem]]:
        from campaigns.journeys import load_journeys

        return load_journeys(self.settings.journeys_dir)

    @cached_property
    def journeys(self) -> JourneyEngine:
        from campaigns.engine import Engine as JourneyEngine
        from campaigns.engine import sync_journeys

        loaded, problems = self.load_journeys()
        errors = [p for p in problems if p.level == "error"]
        if errors:
            raise ConfigurationError(
                "journeys are invalid (run `aftersale journeys validate`):\n"
                + "\n".join(str(p) for p in errors)
            )
        with self.db.begin() as conn:
            active = sync_journeys(conn, [(j.journey, j.source) for j in loaded], self.now())
        return JourneyEngine(
            active,
            timezone=self.policy.rules.default_timezone,
            segments=self.settings.segment_rules(),
        )

    def channel_config(self) -> dict[str, str | None]:
        s = self.settings
        return {
            "sendgrid_api_key": s.sendgrid_api_key,
            "sendgrid_api_host": s.sendgrid_api_host,
            "twilio_account_sid": s.twilio_account_sid,
            "twilio_auth_token": s.twilio_auth_token,
            "twilio_from": s.twilio_from,
            "twilio_messaging_service_sid": s.twilio_messaging_service_sid,
            "twilio_api_base_url": s.twilio_api_base_url,
            "twilio_status_callback": f"{s.public_url.rstrip('/')}/webhooks/twilio/status",
            "smtp_url": s.smtp_url,
            "email_from": s.email_from,
            "email_reply_to": s.email_reply_to,
        }

    @cached_property
    def channels(self) -> dict[str, Channel]:
        from channels.errors import ConfigurationError as ChannelConfigurationError
        from channels.registry import build_channel

        built: dict[str, Channel] = {}
        providers = (("email", self.settings.email_provider), ("sms", self.settings.sms_provider))
        for kind, provider in providers:
            if kind in self.channel_overrides:
                built[kind] = self.channel_overrides[kind]
                continue
            try:
                built[kind] = build_channel(
                    kind, provider, self.channel_config(), outbox_dir=self.settings.outbox_dir
                )
            except ChannelConfigurationError as exc:
                raise ConfigurationError(str(exc)) from exc
        return built

    def warnings(self) -> list[str]:
        """Settings that work, but not as a shop would want once messages go out for real."""
        s = self.settings
        found = []
        if s.sms_short_links and s.sms_provider == "twilio" and _is_loopback(s.public_url):
            found.append(
                f"SMS links would point at {s.public_url}, which customers cannot reach: "
                "set AFTERSALE_PUBLIC_URL, or sms.short_links = false"
            )
        return found

    def secret_key(self) -> str:
        return self.settings.require("secret_key")

    def signing_keys(self) -> SigningKeys:
        """The keys that sign sessions, links and coupons (``aftersale.keys``)."""
        from aftersale.keys import SigningKeys

        return SigningKeys(self.secret_key(), self.settings.secret_key_previous or None)

    def sends_for_real(self) -> bool:
        """Whether a provider would reach real customers (not the outbox or memory)."""
        if self.channel_overrides:
            return False
        real = {"sendgrid", "smtp", "twilio"}
        return bool({self.settings.email_provider, self.settings.sms_provider} & real)

    def require_strong_key(self) -> None:
        """Refuse to sign anything real with a weak ``secret_key`` (``aftersale.keys``)."""
        from aftersale.keys import require_strong_key

        require_strong_key(self.settings.secret_key)
        if self.settings.secret_key_previous:
            require_strong_key(self.settings.secret_key_previous, setting="secret_key_previous")

    def require_legal_data(self) -> None:
        """Refuse a real provider while the sender's data is a placeholder or the sample
        shop's (:mod:`aftersale.legal`); the error names each setting on a line of its own."""
        from aftersale.legal import unfinished_settings

        if not self.sends_for_real():
            return
        unfinished = unfinished_settings(self.settings)
        if unfinished:
            raise ConfigurationError(
                "before sending to customers, fill in (aftersale.toml):\n"
                + "\n".join(str(u) for u in unfinished)
            )

    def dispatcher(
        self, clock: Clock, *, dispatchers: int = 1, kind: type[Dispatcher] | None = None
    ) -> Dispatcher:
        """A dispatcher on ``clock``, one of ``dispatchers`` processes on this machine.

        ``kind``: another class of dispatcher (a simulation's, a forecast's) than the plain
        :class:`Dispatcher`; one whose ``render_processes`` is false renders in its own thread."""
        from scheduler.dispatcher import DispatchConfig, Dispatcher

        kind = kind or Dispatcher
        s = self.settings
        config = DispatchConfig(
            batch_size=s.dispatch_batch_size,
            lease=timedelta(seconds=s.dispatch_lease_seconds),
            max_attempts=s.dispatch_max_attempts,
            workers=self.sending_threads,
            public_url=s.public_url,
            secret_key=self.secret_key(),
            default_locale=s.default_locale,
            rates={"email": s.email_rate, "sms": s.sms_rate},
            short_links=s.sms_short_links,
        )
        return kind(
            db=self.db,
            clock=clock,
            policy=self.policy,
            renderer=self.renderer,
            channels=self.channels,
            journeys=self.journeys,
            config=config,
            render_pool=(
                self._render_pool(dispatchers) if getattr(kind, "render_processes", True) else None
            ),
        )

    def chores(self) -> list[Chore]:
        """What the leading dispatcher of ``run`` does now and then beside sending: evaluate
        the complaint alerts every ``[alerts] every_hours`` (keeping the SKUs that
        ``item.sku in alerts`` reads current, and mailing support when ``[alerts] email``)."""
        from aftersale import alerts  # statistics are loaded only when the chore runs
        from scheduler.workers import Chore

        every = alerts.alert_rules(self).every_hours * 3600.0
        return [Chore("complaint alerts", every, partial(alerts.evaluate, self))]

    def _render_pool(self, dispatchers: int = 1) -> RenderPool | None:
        """Render processes for one of ``dispatchers`` dispatchers (``dispatch.render_processes``)."""
        from scheduler.rendering import RenderPool, render_processes

        processes = render_processes(
            self.settings.dispatch_render_processes, dispatchers=dispatchers
        )
        return RenderPool(self.renderer_factory, processes=processes) if processes else None

    # -- the project's clock ------------------------------------------------------

    def simulated_now(self) -> datetime | None:
        """Where the simulated clock stands; on a fresh project, the earliest event."""
        import sqlalchemy as sa

        from campaigns.models import Event, ProjectState, reading

        state_t, events_t = ProjectState.__table__, Event.__table__
        with reading(self.db) as conn:
            stored = conn.execute(
                sa.select(state_t.c.value).where(state_t.c.key == CLOCK_KEY)
            ).scalar()
            if stored:
                return datetime.fromisoformat(stored)
            return conn.execute(sa.select(sa.func.min(events_t.c.at))).scalar()

    def save_simulated_now(self, moment: datetime) -> None:
        from campaigns.models import ProjectState

        state_t = ProjectState.__table__
        with self.db.begin() as conn:
            updated = conn.execute(
                state_t.update().where(state_t.c.key == CLOCK_KEY).values(value=moment.isoformat())
            ).rowcount
            if not updated:
                conn.execute(state_t.insert().values(key=CLOCK_KEY, value=moment.isoformat()))

    def now(self) -> datetime:
        return datetime.now(UTC)

    def simulated_clock(self) -> SimulatedClock | None:
        from scheduler.clock import SimulatedClock

        start = self.simulated_now()
        return SimulatedClock(start) if start else None

    def system_clock(self) -> Clock:
        from scheduler.clock import SystemClock

        return SystemClock()

    def close(self) -> None:
        for channel in self.channels.values() if "channels" in self.__dict__ else ():
            channel.close()
        if "db" in self.__dict__:
            self.db.dispose()


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
