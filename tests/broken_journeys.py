"""Twenty journeys with one mistake each, as marketers make them, and what must be said.

Shared by the validation tests and the benchmark: ``write_broken(directory)`` writes them.
"""

from __future__ import annotations

from pathlib import Path

BASE = """\
id: {id}
name: Extended warranty offer
trigger:
  event: purchase
  for_each: item
  item_condition: item.warranty_months
exit:
  events: [warranty_extended]
steps:
  - id: offer_email
    wait: -60d
    from: warranty_end
    send:
      channel: email
      template: warranty_offer
      category: marketing
      expires_at: warranty_end
"""

# name: (text replaced, replacement, the line the mistake is on, words the message must hold)
MISTAKES: dict[str, tuple[str, str, int, tuple[str, ...]]] = {
    "delay": ("    wait: -60d", "    delay: -60d", 11, ("unknown field `delay`", "`wait`")),
    "wiat": ("    wait: -60d", "    wiat: -60d", 11, ("`wiat`", "did you mean `wait`")),
    "bare_number": ("wait: -60d", "wait: 14", 11, ("bare number", "14d")),
    "unknown_unit": ("wait: -60d", "wait: 14 dayz", 11, ("'dayz'", "14 days")),
    "template": ("template: warranty_offer", "template: warranty_ofer", 15,
                 ("no email template named 'warranty_ofer'", "did you mean `warranty_offer`",
                  "templates copy warranty_offer", "warranty_ofer.email.de.html.j2")),
    "single_equals": ("item_condition: item.warranty_months",
                      "item_condition: item.category = 'appliance'", 6,
                      ("`==`", "item.category == 'appliance'")),
    "warranty_month": ("item_condition: item.warranty_months",
                       "item_condition: item.warranty_month", 6,
                       ("no field `warranty_month`", "item.warranty_months")),
    "order_totl": ("item_condition: item.warranty_months",
                   "item_condition: order.totl > 100", 6, ("`totl`", "order.total")),
    "unknown_name": ("item_condition: item.warranty_months",
                     "item_condition: itme.warranty_months", 6, ("`itme`", "`item`")),
    "channel": ("channel: email", "channel: emial", 14, ("'emial'", "did you mean `email`")),
    "category": ("category: marketing", "category: marketting", 16, ("marketing",)),
    "anchor": ("from: warranty_end", "from: warranty_ending", 12, ("`warranty_end`",)),
    "chanel_field": ("      channel: email", "      chanel: email", 14,
                     ("unknown field `chanel`", "`channel`")),
    "tigger": ("trigger:", "tigger:", 3, ("unknown field `tigger`", "`trigger`")),
    "expires_negative": ("      expires_at: warranty_end", "      expires_after: -3d", 17,
                         ("longer than zero",)),
    "step_id": ("  - id: offer_email", "  - id: Offer Email", 10, ("lower-case",)),
    "for_each": ("for_each: item", "for_each: items", 5, ("`item`",)),
    "send_window": ("      expires_at: warranty_end",
                    '      expires_at: warranty_end\n    send_window: "25:00-18:00 mon-fri"', 18,
                    ("send_window", "10:00-18:00 mon-fri")),
    "window_days": ("      expires_at: warranty_end",
                    '      expires_at: warranty_end\n    send_window: "10:00-18:00 mon-fry"', 18,
                    ("fry",)),
    "every_bare": ("      expires_at: warranty_end",
                   "      expires_at: warranty_end\n    repeat: {every: 90, times: 2}", 18,
                   ("bare number", "90d")),
}  # fmt: skip


def write_broken(directory: Path) -> dict[str, Path]:
    """Write one file per mistake into ``directory``; returns them by mistake."""
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, (old, new, _, _) in MISTAKES.items():
        text = BASE.format(id=f"broken_{name}")
        assert old in text, name
        path = directory / f"{name}.yaml"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
        written[name] = path
    return written
