"""`oms shipment ...`: list an order's shipments, split items into another shipment."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas import Address, Shipment, ShipmentMethod, ShipmentSplit, ShipmentSplitRejected, ShipmentSplitRequested
from schemas.envelope import describe_validation_error
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
from services.runtime.formatting import money

shipment_app = typer.Typer(help="Shipments: list them, split items into another shipment.", no_args_is_help=True)


async def order_shipments(conn: AsyncConnection, reference: str) -> list[dict[str, Any]]:
    result = await conn.execute(
        text(
            """SELECT s.id, s.status, s.address, s.method, s.requested_delivery_date, s.expense_amount, s.currency,
                      coalesce(array_agg(si.item_id ORDER BY si.item_id) FILTER (WHERE si.item_id IS NOT NULL),
                               '{}') AS item_ids
               FROM shipping.shipment s LEFT JOIN shipping.shipment_item si ON si.shipment_id = s.id
               WHERE s.order_reference = :r GROUP BY s.id ORDER BY s.id"""
        ),
        {"r": reference},
    )
    return [dict(row._mapping) for row in result]


def _address_line(address: dict[str, Any]) -> str:
    return ", ".join(
        part
        for part in (
            f"{address['first_name']} {address['last_name']}",
            address.get("company"),
            address["address1"],
            f"{address['zip_code']} {address['city']}",
            address["country"],
        )
        if part
    )


@shipment_app.command("list")
def list_shipments(
    reference: Annotated[str, typer.Argument(help="Order reference.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The order's shipments: status, address, method, requested date, expense and items."""
    settings = settings_or_error()
    shipments = asyncio.run(with_connection(settings, "shipping", lambda conn: order_shipments(conn, reference)))
    if not shipments:
        raise CliError(f"order {reference!r} has no shipments (unknown order, or not processed yet)")
    if as_json:
        typer.echo(json.dumps(shipments, indent=2, default=str))
        return
    table = Table(
        "shipment", "status", "address", "method", "date", "expense", "items", title=f"Shipments of {reference}"
    )
    for row in shipments:
        table.add_row(
            str(row["id"]),
            row["status"],
            _address_line(row["address"]),
            row["method"]["name"],
            str(row["requested_delivery_date"] or "-"),
            money(row["expense_amount"], row["currency"], "en_US"),
            ", ".join(map(str, row["item_ids"])),
        )
    Console(width=160).print(table)


def resolve_method(key: str, shipments: list[dict[str, Any]], catalog: dict[str, dict[str, Any]]) -> ShipmentMethod:
    """A method the order already uses, else one from the OMS_SHIPMENT_METHODS catalog."""
    for row in shipments:
        if row["method"]["key"] == key:
            return ShipmentMethod.model_validate(row["method"])
    if key in catalog:
        try:
            return ShipmentMethod.model_validate({"key": key, **catalog[key]})
        except ValidationError as exc:
            raise CliError(
                f"shipment method {key!r} in OMS_SHIPMENT_METHODS is invalid: {describe_validation_error(exc)}"
            ) from exc
    known = sorted({row["method"]["key"] for row in shipments} | set(catalog))
    raise CliError(f"unknown shipment method {key!r}; known: {', '.join(known) or 'none'}")


@shipment_app.command("split")
def split(
    reference: Annotated[str, typer.Argument(help="Order reference.")],
    item_values: Annotated[
        list[str], typer.Option("--items", help="Item ids to move: --items 1,2,3 (or --items 1 --items 2).")
    ],
    to: Annotated[int | None, typer.Option("--to", help="Existing shipment of the order to move them into.")] = None,
    address: Annotated[Path | None, typer.Option("--address", help="JSON file with the new address.")] = None,
    method: Annotated[str | None, typer.Option("--method", help="Shipment method key for the new shipment.")] = None,
    date: Annotated[str | None, typer.Option("--date", help="Requested delivery date, YYYY-MM-DD.")] = None,
    requested_by: Annotated[str, typer.Option(help="Who asks, for the record.")] = "oms-cli",
    wait: WaitOption = True,
    timeout: TimeoutOption = 30,
) -> None:
    """Move items into an existing shipment (--to) or a new one (--address and --method, optional --date);
    prints shipping's answer, shipment.split or shipment.split_rejected."""
    items = item_ids_option(item_values) or []
    if (to is None) == (address is None and method is None):
        raise CliError("give either --to SHIPMENT, or --address FILE.json with --method KEY")
    settings = settings_or_error()
    new_shipment = None
    if to is None:
        if address is None or method is None:
            raise CliError("a new shipment needs both --address FILE.json and --method KEY")
        try:
            new_address = Address.model_validate_json(address.read_text())
        except OSError as exc:
            raise CliError(f"cannot read {address}: {exc.strerror or exc}") from exc
        except ValidationError as exc:
            raise CliError(f"{address} is not a valid address: {describe_validation_error(exc)}") from exc
        try:
            requested = dt.date.fromisoformat(date) if date else None
        except ValueError as exc:
            raise CliError(f"--date {date!r} is not a date in the form YYYY-MM-DD") from exc
        shipments = asyncio.run(with_connection(settings, "shipping", lambda conn: order_shipments(conn, reference)))
        new_shipment = Shipment(
            address=new_address,
            method=resolve_method(method, shipments, settings.shipment_methods),
            requested_delivery_date=requested,
        )
    request = ShipmentSplitRequested(
        order_reference=reference,
        item_ids=items,
        target_shipment_id=to,
        new_shipment=new_shipment,
        requested_by=requested_by,
    )
    target = f"shipment {to}" if to is not None else "a new shipment"
    # One shipment.split per shipment the items came from, written together.
    queued = (
        f"requested moving items {', '.join(map(str, items))} of {reference} into {target} (request "
        f"{request.event_id}); see `oms shipment list {reference}`; refusals come as shipment.split_rejected"
    )
    answers = (ShipmentSplit, ShipmentSplitRejected)
    found = ask(settings, "shipping", request, answers, wait=wait, timeout=timeout, settle=1.0, queued=queued)
    for answer in found:
        if isinstance(answer, ShipmentSplitRejected):
            raise CliError(
                f"moving items {', '.join(map(str, items))} of {reference} into {target} refused ({answer.reason}): "
                f"{answer.message}{refused_lines(answer.refused_items)}",
                exit_code=REFUSED,
            )
    for answer in found:
        assert isinstance(answer, ShipmentSplit)
        new = "new " if answer.to_shipment_created else ""
        removed = f"; shipment {answer.from_shipment_id} is empty and removed" if answer.from_shipment_removed else ""
        typer.echo(
            f"moved {items_counted(answer.item_id_ranges)} of {reference} from shipment {answer.from_shipment_id} "
            f"to {new}shipment {answer.to_shipment_id} ({id_ranges_text(answer.item_id_ranges)}){removed}"
        )
