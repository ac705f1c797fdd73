"""`oms order ...` and `oms matrix`: trigger events, see where an order's items are, the order matrix."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from schemas import (
    ItemStateChanged,
    OrderCanceled,
    OrderCancelRejected,
    OrderCancelRequested,
    OrderCustomReferenceChanged,
    OrderCustomReferenceUpdateRejected,
    OrderCustomReferenceUpdateRequested,
    OrderItemEventRejected,
    OrderItemEventRequested,
)
from services.order_state.process_catalog import ProcessCatalog
from services.order_state.queries import OrderPage, order_matrix, order_page
from services.runtime.cli_support import (
    REFUSED,
    CliError,
    TimeoutOption,
    WaitOption,
    ask,
    id_ranges_text,
    item_ids_option,
    items_counted,
    refused_lines,
    settings_or_error,
    with_connection,
)

order_app = typer.Typer(help="Orders: trigger events, show an order.", no_args_is_help=True)

ItemsOption = Annotated[
    list[str] | None, typer.Option("--items", help="Only these item ids: --items 1,2,3 (or --items 1 --items 2).")
]


def for_how_long(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} days"


@order_app.command("trigger")
def trigger(
    reference: Annotated[str, typer.Argument(help="Order reference.")],
    event: Annotated[str, typer.Argument(help='Process event, e.g. "pay" or "ship".')],
    item_values: ItemsOption = None,
    shipment: Annotated[int | None, typer.Option("--shipment", help="Only the items of this shipment.")] = None,
    requested_by: Annotated[str, typer.Option(help="Who asks, for the record.")] = "oms-cli",
    wait: WaitOption = True,
    timeout: TimeoutOption = 30,
) -> None:
    """Ask order_state to fire EVENT for the whole order, one shipment or chosen items; prints what moved
    (item.state_changed) and what was refused (order.item_event_rejected)."""
    items = item_ids_option(item_values)
    if items and shipment is not None:
        raise CliError("give --items or --shipment, not both")
    settings = settings_or_error()
    try:
        request = OrderItemEventRequested(
            order_reference=reference,
            event=event,
            item_ids=items or None,
            shipment_id=shipment,
            requested_by=requested_by,
        )
    except ValueError as exc:
        raise CliError(f"invalid request: {exc}") from exc
    scope = f"items {', '.join(map(str, items))}" if items else f"shipment {shipment}" if shipment else "all items"
    queued = (
        f"requested {event!r} for {scope} of {reference} (request {request.event_id}); "
        f"see `oms order show {reference}`; refusals come as order.item_event_rejected"
    )
    # Items moved and items refused by one request are two events written together: the second follows closely.
    answers = (ItemStateChanged, OrderItemEventRejected)
    found = ask(settings, "order_state", request, answers, wait=wait, timeout=timeout, settle=1.0, queued=queued)
    for answer in found:
        if isinstance(answer, ItemStateChanged):
            for change in answer.changes:
                typer.echo(
                    f"{event!r} on {reference}: {items_counted(change.item_id_ranges)} "
                    f"{change.from_state} -> {change.to_state} ({id_ranges_text(change.item_id_ranges)})"
                )
    refusals = [answer for answer in found if isinstance(answer, OrderItemEventRejected)]
    if refusals:
        answer = refusals[0]
        refused = refused_lines(answer.refused_items)
        raise CliError(
            f"{event!r} for {scope} of {reference} refused ({answer.reason}): {answer.message}{refused}",
            exit_code=REFUSED,
        )


def _page_json(page: OrderPage, now: datetime) -> dict[str, Any]:
    return {
        "order": page.order,
        "states": [
            {
                "state": state,
                "items": count,
                "possible_events": page.possible_events[state],
                "manual_events": page.manual_events[state],
                "shown": [
                    {
                        "id": item.id,
                        "sku": item.sku,
                        "quantity": item.quantity,
                        "shipment_id": item.shipment_id,
                        "in_state_since": item.state_changed_at,
                        "in_state_seconds": int((now - item.state_changed_at).total_seconds()),
                        "history": [entry.__dict__ for entry in item.history],
                    }
                    for item in page.items_by_state.get(state, [])
                ],
            }
            for state, count in sorted(page.item_count_by_state.items())
        ],
        "command_log": page.command_log,
    }


@order_app.command("show")
def show(
    reference: Annotated[str, typer.Argument(help="Order reference.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="Items shown per state.")] = 20,
) -> None:
    """The order page: items grouped by state, how long each has been there, history, events possible now."""
    settings = settings_or_error()
    catalog = ProcessCatalog.load(settings)
    page = asyncio.run(
        with_connection(
            settings, "order_state", lambda conn: order_page(conn, reference, catalog, items_per_state=limit)
        )
    )
    if page is None:
        raise CliError(f"there is no order {reference!r}")
    now = datetime.now(UTC)
    if as_json:
        typer.echo(json.dumps(_page_json(page, now), indent=2, default=str))
        return
    console = Console(width=140)
    order = page.order
    custom = f" ({order['custom_order_reference']})" if order["custom_order_reference"] else ""
    console.print(
        f"[bold]Order {order['order_reference']}[/bold]{custom}  store {order['store']}  "
        f"process {order['process_name']}  placed {order['placed_at']:%Y-%m-%d %H:%M} UTC\n"
        f"customer {order['customer_reference']} ({order['customer_email']})",
        highlight=False,
    )
    for state, count in sorted(page.item_count_by_state.items()):
        manual = ", ".join(page.manual_events[state]) or "none"
        automatic = [event for event in page.possible_events[state] if event not in page.manual_events[state]]
        console.print(
            f"\n[bold]{state}[/bold]: {count} items   manual events now: {manual}"
            + (f"   waiting for: {', '.join(automatic)}" if automatic else "")
        )
        table = Table("item", "sku", "qty", "shipment", "in state for", "history")
        for item in page.items_by_state.get(state, []):
            history = " → ".join(
                f"{entry.to_state} ({entry.event or 'created' if entry.from_state is None else entry.event or '-'}, "
                f"{entry.at:%H:%M:%S})"
                for entry in item.history
            )
            table.add_row(
                str(item.id),
                item.sku,
                str(item.quantity),
                str(item.shipment_id or "-"),
                for_how_long(now - item.state_changed_at),
                history,
            )
        console.print(table)
        if count > len(page.items_by_state.get(state, [])):
            console.print(f"... and {count - len(page.items_by_state.get(state, []))} more (--limit)")
    failed = [entry for entry in page.command_log if entry["error"]]
    if failed:
        console.print("\n[bold red]Failed commands[/bold red] (items stayed in their source state):")
        for entry in failed:
            console.print(
                f"  {entry['created_at']:%Y-%m-%d %H:%M:%S} {entry['command']} on {entry['event']} "
                f"({entry['items']} items, {entry['source_state']}): {entry['error']}"
            )


def matrix(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """The order matrix: items per process and state, by time since their last state change."""
    settings = settings_or_error()
    catalog = ProcessCatalog.load(settings)
    now = datetime.now(UTC)
    rows = asyncio.run(with_connection(settings, "order_state", lambda conn: order_matrix(conn, now, catalog)))
    if as_json:
        typer.echo(json.dumps([row.as_dict() for row in rows], indent=2))
        return
    table = Table("process", "state", "< 1 day", "1-7 days", "older", "total", title="Order matrix")
    for row in rows:
        table.add_row(
            row.process, row.state, str(row.under_1_day), str(row.days_1_to_7), str(row.older), str(row.total)
        )
    Console(width=140).print(table)


@order_app.command("set-reference")
def set_reference(
    reference: Annotated[str, typer.Argument(help="Order reference.")],
    value: Annotated[str | None, typer.Argument(help="The new custom order reference.")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the custom order reference.")] = False,
    requested_by: Annotated[str, typer.Option(help="Who asks, for the record.")] = "oms-cli",
    wait: WaitOption = True,
    timeout: TimeoutOption = 30,
) -> None:
    """Set (VALUE) or clear (--clear) an order's custom reference, as the back office; prints the answer,
    order.custom_reference_changed or order.custom_reference_update_rejected."""
    if (value is None) == (not clear):
        raise CliError("give either a VALUE or --clear")
    settings = settings_or_error()
    request = OrderCustomReferenceUpdateRequested(
        order_reference=reference, value=None if clear else value, requested_by=requested_by
    )
    what = "clearing the custom reference" if clear else f"custom reference {value!r}"
    queued = (
        f"requested {what} for {reference} (request {request.event_id}); the answer is "
        "order.custom_reference_changed or order.custom_reference_update_rejected"
    )
    answers = (OrderCustomReferenceChanged, OrderCustomReferenceUpdateRejected)
    found = ask(settings, "order_state", request, answers, wait=wait, timeout=timeout, queued=queued)
    if not found:
        return
    answer = found[0]
    if isinstance(answer, OrderCustomReferenceUpdateRejected):
        raise CliError(f"{what} for {reference} refused ({answer.reason}): {answer.message}", exit_code=REFUSED)
    assert isinstance(answer, OrderCustomReferenceChanged)
    typer.echo(f"custom reference of {reference}: {answer.old_value!r} -> {answer.new_value!r}")


@order_app.command("cancel")
def cancel(
    reference: Annotated[str, typer.Argument(help="Order reference.")],
    item_values: ItemsOption = None,
    shipment: Annotated[int | None, typer.Option("--shipment", help="Only this shipment (back office).")] = None,
    as_customer: Annotated[
        str | None,
        typer.Option(
            "--as-customer",
            help="Ask as the customer with this customer reference (`oms order show` prints it): the whole "
            "order, within the window.",
        ),
    ] = None,
    reason: Annotated[str, typer.Option(help="Why, for the record.")] = "",
    wait: WaitOption = True,
    timeout: TimeoutOption = 30,
) -> None:
    """Cancel a whole order, one shipment or chosen items; prints the answer, order.canceled or
    order.cancel_rejected."""
    items = item_ids_option(item_values)
    if items and shipment is not None:
        raise CliError("give --items or --shipment, not both")
    settings = settings_or_error()
    request = OrderCancelRequested(
        order_reference=reference,
        requested_by_role="customer" if as_customer else "back_office",
        customer_reference=as_customer,
        reason=reason,
        item_ids=items or None,
        shipment_id=shipment,
    )
    scope = f"items {', '.join(map(str, items))}" if items else f"shipment {shipment}" if shipment else "whole order"
    who = f"customer {as_customer}" if as_customer else "the back office"
    queued = (
        f"requested cancelling {scope} of {reference} as {who} (request {request.event_id}); "
        "the answer is order.canceled or order.cancel_rejected"
    )
    answers = (OrderCanceled, OrderCancelRejected)
    found = ask(settings, "order_state", request, answers, wait=wait, timeout=timeout, queued=queued)
    if not found:
        return
    answer = found[0]
    if isinstance(answer, OrderCancelRejected):
        refused = refused_lines(answer.refused_items)
        raise CliError(
            f"cancelling {scope} of {reference} as {who} refused ({answer.reason}): {answer.message}{refused}",
            exit_code=REFUSED,
        )
    assert isinstance(answer, OrderCanceled)
    whole = ", the whole order" if answer.whole_order else ""
    typer.echo(
        f"cancelled {items_counted(answer.item_id_ranges)} of {reference}{whole}: "
        f"{id_ranges_text(answer.item_id_ranges)}"
    )
