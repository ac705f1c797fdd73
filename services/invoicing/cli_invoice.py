"""`oms invoice ...`: show an invoice, send it again."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas import InvoiceResendRejected, InvoiceResendRequested, InvoiceSent
from services.runtime.cli_support import (
    REFUSED,
    CliError,
    TimeoutOption,
    WaitOption,
    ask,
    settings_or_error,
    with_connection,
)
from services.runtime.formatting import money

invoice_app = typer.Typer(help="Invoices: show one, send it again.", no_args_is_help=True)


async def invoice_with_deliveries(conn: AsyncConnection, reference: str) -> dict[str, Any] | None:
    """The invoice of an order (by order or invoice reference) and every e-mail delivery of it."""
    row = (
        await conn.execute(
            text(
                """SELECT id, order_reference, custom_order_reference, invoice_reference, store, locale, currency,
                          customer_email, subtotal, expense_total, tax_total, grand_total, issued_at
                   FROM invoicing.invoice WHERE order_reference = :r OR invoice_reference = :r"""
            ),
            {"r": reference},
        )
    ).first()
    if row is None:
        return None
    deliveries = [
        dict(delivery._mapping)
        for delivery in await conn.execute(
            text(
                """SELECT purpose, recipient, cardinality(bcc) AS bcc_count, message_id, status, attempts,
                          last_error, sent_at, created_at, requested_by, subject, body_text, body_html
                   FROM invoicing.invoice_email WHERE invoice_id = :id ORDER BY id"""
            ),
            {"id": row.id},
        )
    ]
    return {**{k: v for k, v in row._mapping.items() if k != "id"}, "deliveries": deliveries}


@invoice_app.command("show")
def show(
    reference: Annotated[str, typer.Argument(help="Order reference or invoice reference.")],
    html: Annotated[Path | None, typer.Option("--html", help="Write the invoice's HTML document to this file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Print the invoice (the text the customer received) and its e-mail deliveries, or write its HTML."""
    settings = settings_or_error()
    found = asyncio.run(with_connection(settings, "invoicing", lambda conn: invoice_with_deliveries(conn, reference)))
    if found is None:
        raise CliError(f"there is no invoice for {reference!r}")
    document = found["deliveries"][0] if found["deliveries"] else None
    if html is not None:
        if document is None:
            raise CliError(f"invoice {found['invoice_reference']} has no document yet")
        try:
            html.write_text(document["body_html"])
        except OSError as exc:
            raise CliError(f"cannot write {html}: {exc.strerror or exc}") from exc
        typer.echo(f"wrote {html}")
        return
    if as_json:
        for delivery in found["deliveries"]:
            delivery.pop("body_html")
        typer.echo(json.dumps(found, indent=2, default=str))
        return
    if document is not None:
        typer.echo(document["body_text"])
    figures = ", ".join(
        f"{name} {money(found[name], found['currency'], 'en_US')}"
        for name in ("subtotal", "expense_total", "tax_total", "grand_total")
    )
    typer.echo(f"--\ninvoice {found['invoice_reference']} for order {found['order_reference']}: {figures}")
    for delivery in found["deliveries"]:
        when = delivery["sent_at"] or "not yet"
        error = f", last error: {delivery['last_error']}" if delivery["last_error"] else ""
        asked = f", asked by {delivery['requested_by']}" if delivery["requested_by"] else ""
        typer.echo(
            f"e-mail ({delivery['purpose']}) to {delivery['recipient']} + {delivery['bcc_count']} BCC: "
            f"{delivery['status']}, sent {when}, {delivery['attempts']} attempts{asked}{error}"
        )


@invoice_app.command("resend")
def resend(
    reference: Annotated[str, typer.Argument(help="Order reference.")],
    requested_by: Annotated[str, typer.Option(help="Who asks, for the record.")] = "oms-cli",
    wait: WaitOption = True,
    timeout: TimeoutOption = 30.0,
) -> None:
    """Send the invoice e-mail again, on purpose; the resend is recorded with who asked. Waits until the mail
    server has taken it (invoice.sent) or the resend is refused (invoice.resend_rejected)."""
    settings = settings_or_error()
    request = InvoiceResendRequested(order_reference=reference, requested_by=requested_by)
    queued = (
        f"requested a resend of the invoice of {reference} (request {request.event_id}); "
        f"see `oms invoice show {reference}`"
    )
    # The answer comes when the mail server has taken the e-mail, which is retried while it is away.
    unanswered = f", or its e-mail waits for the mail server: `oms invoice show {reference}` shows each delivery"
    answers = (InvoiceSent, InvoiceResendRejected)
    found = ask(
        settings, "invoicing", request, answers, wait=wait, timeout=timeout, queued=queued, unanswered=unanswered
    )
    if not found:
        return
    answer = found[0]
    if isinstance(answer, InvoiceResendRejected):
        raise CliError(
            f"resending the invoice of {reference} refused ({answer.reason}): {answer.message}", exit_code=REFUSED
        )
    assert isinstance(answer, InvoiceSent)
    bcc = f" (and {answer.bcc_count} in Bcc)" if answer.bcc_count else ""
    typer.echo(
        f"sent invoice {answer.invoice_reference} of {reference} again to {answer.recipient}{bcc}, "
        f"asked by {requested_by}; Message-ID {answer.message_id}"
    )
