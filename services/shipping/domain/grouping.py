"""Split delivery: items are grouped into shipments by address + method + requested delivery date."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from schemas import OrderLine, Shipment


def normalise_address(address: dict[str, object]) -> dict[str, str]:
    """Case and surrounding spaces do not make a different address; empty fields are dropped."""
    normalised = {}
    for name, value in address.items():
        if value is None:
            continue
        text = " ".join(str(value).split()).casefold()
        if text:
            normalised[name] = text
    return normalised


def shipment_key(shipment: Shipment) -> str:
    identity = {
        "address": normalise_address(shipment.address.model_dump(mode="json")),
        "method": shipment.method.key,
        "date": shipment.requested_delivery_date.isoformat() if shipment.requested_delivery_date else None,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


@dataclass
class ShipmentGroup:
    key: str
    shipment: Shipment
    item_ids: list[int] = field(default_factory=list)


def group_items(lines: list[OrderLine], *, split_delivery: bool = True) -> list[ShipmentGroup]:
    """Shipments in the order their first line appears. With split delivery off, one shipment."""
    groups: dict[str, ShipmentGroup] = {}
    for line in lines:
        key = shipment_key(line.shipment) if split_delivery else "single"
        group = groups.setdefault(key, ShipmentGroup(key, line.shipment))
        group.item_ids.extend(line.item_ids)
    return list(groups.values())
