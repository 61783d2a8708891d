"""A journey definition as a flow of boxes: trigger, then per step wait → condition → send, exit.

The page draws these nodes as CSS boxes joined by arrows; the same list serves the JSON API.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

FROM_LABELS = {
    None: "after the previous step (or the trigger)",
    "trigger": "after the trigger",
    "previous": "after the previous step",
    "warranty_end": "relative to the warranty end",
    "purchase": "after the purchase",
}


@dataclass
class FlowNode:
    """One box in the drawing."""

    kind: str  # trigger | wait | condition | send | exit
    title: str
    lines: list[str] = field(default_factory=list)
    step: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _trigger(definition: dict[str, Any]) -> FlowNode:
    trigger = definition.get("trigger", {})
    lines = [f"for each {trigger.get('for_each', 'order')}"]
    if trigger.get("condition"):
        lines.append(f"if {trigger['condition']}")
    if trigger.get("item_condition"):
        lines.append(f"items where {trigger['item_condition']}")
    if definition.get("audience"):
        lines.append(f"audience: {definition['audience']}")
    if definition.get("reentry"):
        lines.append(f"re-entry: {definition['reentry']}")
    return FlowNode("trigger", f"When: {trigger.get('event', '?')}", lines)


def _wait(step: dict[str, Any]) -> FlowNode:
    wait = str(step.get("wait", "0m"))
    lines = [FROM_LABELS.get(step.get("from"), str(step.get("from")))]
    repeat = step.get("repeat")
    if repeat:
        bound = f"{repeat['times']} times" if repeat.get("times") else f"within {repeat['within']}"
        lines.append(f"repeat every {repeat['every']}, {bound}")
    return FlowNode("wait", f"Wait {wait}", lines, step["id"])


def _send(step: dict[str, Any]) -> FlowNode:
    send = step.get("send", {})
    lines = [f"template {send.get('template')}", f"{send.get('category', 'marketing')}"
             f" · priority {send.get('priority', 0)}"]  # fmt: skip
    if send.get("expires_after"):
        lines.append(f"expires after {send['expires_after']}")
    if send.get("expires_at"):
        lines.append(f"expires at {send['expires_at']}")
    return FlowNode("send", f"Send {send.get('channel', '?')}: {step['id']}", lines, step["id"])


def _exit(definition: dict[str, Any]) -> FlowNode:
    exit_ = definition.get("exit") or {}
    lines = [f"on {event}" for event in exit_.get("events", [])]
    if exit_.get("goal"):
        lines.append(f"goal reached: {exit_['goal']}")
    lines.append("after the last step")
    return FlowNode("exit", "Exit", lines)


def journey_flow(definition: dict[str, Any]) -> list[FlowNode]:
    """The nodes of a journey definition (as stored in ``journey_versions.definition``)."""
    nodes = [_trigger(definition)]
    for step in definition.get("steps", []):
        nodes.append(_wait(step))
        if step.get("condition"):
            nodes.append(FlowNode("condition", "Only if", [step["condition"]], step["id"]))
        nodes.append(_send(step))
    nodes.append(_exit(definition))
    return nodes
