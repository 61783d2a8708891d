"""The CLI's tables of figures at 80 columns: ids whole, numbers never cut, nothing wider."""

from __future__ import annotations

from decimal import Decimal

from rich.console import Console

from aftersale.admin.terminal import funnel_table, reasons_table, returns_table
from aftersale.stats import JourneyReturn, Prices, StepFunnel

IDS = ["inspection_invitation", "complaint_followup", "extended_warranty"]


def shown(table) -> str:
    console = Console(width=80, record=True, emoji=False, color_system=None)
    console.print(table)
    return console.export_text()


def test_a_journey_id_and_a_return_of_ten_million_percent_fit_80_columns() -> None:
    returns = [JourneyReturn(j, emails=690, sms_segments=300, cost=Decimal("0.37"), orders=55,
                             revenue=Decimal("37288.00")) for j in IDS]  # fmt: skip
    funnels = [StepFunnel(j, "reminder_sms", "sms", planned=903, sent=690) for j in IDS]
    for text in (shown(returns_table(returns, Prices())), shown(funnel_table(funnels))):
        lines = text.splitlines()
        assert all(len(line) <= 80 for line in lines) and "…" not in text, text
        assert all(any(line.startswith(j + " ") for line in lines) for j in IDS), text
    assert "10,077,738" in shown(returns_table(returns, Prices()))  # (37288 - 0.37) / 0.37


def test_a_long_reason_breaks_rather_than_ends_in_an_ellipsis() -> None:
    reason = "journey_exit:warranty_extended_after_a_very_long_goal_event_name_indeed"
    text = shown(reasons_table("Not sent", [(reason, 3)]))
    assert "…" not in text and reason[:60] in text and "\nd " in text, text  # "…indee" / "d"
