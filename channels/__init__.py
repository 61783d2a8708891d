"""Delivery of rendered messages: one interface, one module per provider."""

from channels.base import (
    AmbiguousChannelError,
    Channel,
    ChannelError,
    DeliveryEvent,
    EventType,
    OutgoingMessage,
    PermanentChannelError,
    RecipientOptedOut,
    SendResult,
    TransientChannelError,
    pickled_by_fields,
)
from channels.errors import ConfigurationError

__all__ = [
    "AmbiguousChannelError",
    "Channel",
    "ChannelError",
    "ConfigurationError",
    "DeliveryEvent",
    "EventType",
    "OutgoingMessage",
    "PermanentChannelError",
    "RecipientOptedOut",
    "SendResult",
    "TransientChannelError",
    "pickled_by_fields",
]
