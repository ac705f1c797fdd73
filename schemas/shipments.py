"""Shipping contracts."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar, Literal

from schemas.envelope import Event, Money
from schemas.orders import Address, ShipmentMethod


class ShipmentCreated(Event):
    TOPIC: ClassVar[str] = "shipment.created"
    event_type: Literal["shipment.created"] = "shipment.created"
    shipment_id: int
    address: Address
    method: ShipmentMethod
    requested_delivery_date: dt.date | None = None
    expense: Money
    item_ids: list[int]
