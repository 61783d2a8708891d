"""Marketer's commands: ``aftersale send-test``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from aftersale.errors import AftersaleError
from aftersale.terminal import safe
from channels.redaction import redact

if TYPE_CHECKING:
    from aftersale.app import Project


def add_commands(app: typer.Typer, open_project: Callable[[], Project], console: Console) -> None:
    """Register ``send-test`` on the CLI ``app``."""
    err = Console(stderr=True, emoji=False)

    def fail(message: str, code: int) -> None:
        err.print(f"[bold red]error:[/] {safe(redact(message))}", highlight=False, soft_wrap=True)
        raise typer.Exit(code)

    @app.command("send-test")
    def send_test_cmd(
        template: str,
        to: Annotated[str, typer.Option("--to", help="Your own e-mail address or phone number.")],
        customer: Annotated[
            str | None, typer.Option(help="Customer id (the first imported when absent).")
        ] = None,
        order: Annotated[
            str | None, typer.Option(help="Order id (the customer's latest when absent).")
        ] = None,
        item: Annotated[str | None, typer.Option(help="SKU of the order's item.")] = None,
        locale: Annotated[str | None, typer.Option(help="Locale, e.g. de or en.")] = None,
    ) -> None:
        """Send one message through the configured provider to TO, marked [TEST]: rendered
        for a customer's order and item, with no send log row and no effect on caps."""
        from aftersale.legal import unfinished_settings
        from aftersale.sendtest import ChannelError, send_test

        try:
            proj = open_project()
            sent = send_test(proj, template, to, customer_id=customer, order_id=order,
                             item_sku=item, locale=locale)  # fmt: skip
        except AftersaleError as exc:
            fail(str(exc), 2)
        except ChannelError as exc:
            fail(f"the provider did not take the test message: {exc}", 1)
        for note in sent.notes:
            err.print(f"[yellow]sample data:[/] {safe(note)}", highlight=False)
        if proj.sends_for_real():
            for unfinished in unfinished_settings(proj.settings):
                err.print(f"[yellow]fill in before going live:[/] {safe(unfinished)}",
                          highlight=False)  # fmt: skip
        what = f"“{sent.subject}”" if sent.channel == "email" else "SMS"
        console.print(f"sent {safe(what)} to {safe(sent.to)} via {safe(sent.provider)} "
                      f"(provider id {safe(sent.result.provider_message_id or '-')})",
                      highlight=False)  # fmt: skip
        proj.close()
