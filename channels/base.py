"""The one seam between aftersale and whatever delivers a message.

Every provider implements :class:`Channel`. The dispatcher hands it an
:class:`OutgoingMessage` and gets a :class:`SendResult` back, or one of the
errors below. Provider webhooks are normalised into :class:`DeliveryEvent`.

Errors::

    ChannelError
     ├── TransientChannelError   retry later (429, 5xx, timeout, refused connection)
     ├── PermanentChannelError   never retry (invalid number, rejected payload, 4xx)
     │    └── RecipientOptedOut  the provider knows the recipient said STOP (Twilio 21610)
     └── AmbiguousChannelError   the request may have reached the provider: never re-send
"""

from __future__ import annotations

import enum
import operator
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal, TypeVar

ChannelKind = Literal["email", "sms"]
T = TypeVar("T")


def pickled_by_fields(cls: type[T]) -> type[T]:
    """Pickle a slotted dataclass as a call of its constructor with its fields in order.

    Python pickles a slotted dataclass field by field through ``dataclasses.fields()``,
    both ways; messages and their rendered content cross to render processes in bulk, and
    this takes a third of the time. Every field must be an ``__init__`` argument.
    """
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    values = operator.attrgetter(*names)
    single = len(names) == 1

    def __reduce__(self: Any) -> tuple[type[T], tuple[Any, ...]]:
        return cls, ((values(self),) if single else values(self))

    cls.__reduce__ = __reduce__  # type: ignore[method-assign, assignment]
    return cls


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """Rendered content ready for delivery, with the ids needed to trace it back."""

    message_id: str
    kind: ChannelKind
    to: str
    body_text: str
    subject: str = ""
    body_html: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    category: Literal["marketing", "transactional"] = "transactional"
    customer_id: str = ""
    journey: str = ""
    step: str = ""


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class SendResult:
    """What the provider said when it accepted the message."""

    provider: str
    provider_message_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class EventType(enum.StrEnum):
    QUEUED = "queued"
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    BOUNCED = "bounced"
    DROPPED = "dropped"
    FAILED = "failed"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"
    OPENED = "opened"
    CLICKED = "clicked"
    OPTED_OUT = "opted_out"
    OPTED_IN = "opted_in"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    """One thing a provider reported, in our words, with the raw event kept beside it."""

    event_type: EventType
    provider: str
    event_id: str | None = None
    message_id: str | None = None
    provider_message_id: str | None = None
    recipient: str | None = None
    timestamp: datetime | None = None
    description: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


class ChannelError(Exception):
    """Root of everything a channel raises."""

    def __init__(
        self, message: str, *, provider: str = "", status: int | None = None, code: str = ""
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.code = code


class TransientChannelError(ChannelError):
    """The provider did not take the message this time; trying again later may work."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class PermanentChannelError(ChannelError):
    """The provider refused the message for good."""


class RecipientOptedOut(PermanentChannelError):
    """The provider blocks this recipient because they opted out (SMS STOP)."""


class AmbiguousChannelError(ChannelError):
    """The request may have reached the provider but no answer came back."""


class Channel(ABC):
    """Delivers :class:`OutgoingMessage` objects of one kind."""

    name: str
    kind: ChannelKind

    @abstractmethod
    def send(self, message: OutgoingMessage) -> SendResult:
        """Deliver one message, or raise a :class:`ChannelError`."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the default holds none."""
