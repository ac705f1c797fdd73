"""Shipping contracts: shipments made at placement, split by the back office, following their items."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from schemas.envelope import Contract, Event, Money
from schemas.items import ItemIdRanges, from_ranges
from schemas.orders import Address, Shipment, ShipmentMethod

ShipmentStatus = Literal["new", "shipped", "delivered", "canceled"]


class ShipmentCreated(Event):
    TOPIC: ClassVar[str] = "shipment.created"
    event_type: Literal["shipment.created"] = "shipment.created"
    shipment_id: int
    address: Address
    method: ShipmentMethod
    requested_delivery_date: dt.date | None = None
    expense: Money
    item_id_ranges: ItemIdRanges = Field(description="The shipment's items as inclusive [first, last] id ranges.")

    @property
    def item_ids(self) -> list[int]:
        return from_ranges(self.item_id_ranges)


class ShipmentSplitRequested(Event):
    """Back office: move chosen items into an existing shipment of the order, or into a new one with
    another address, method or date."""

    TOPIC: ClassVar[str] = "shipment.split_requested"
    event_type: Literal["shipment.split_requested"] = "shipment.split_requested"
    item_ids: list[int] = Field(min_length=1)
    target_shipment_id: int | None = None
    new_shipment: Shipment | None = None
    requested_by: str | None = Field(default=None, max_length=255)

    @model_validator(mode="after")
    def _one_target(self) -> ShipmentSplitRequested:
        if (self.target_shipment_id is None) == (self.new_shipment is None):
            raise ValueError("give exactly one of target_shipment_id and new_shipment")
        return self


SplitRejectionReason = Literal[
    "unknown_order",
    "item_not_in_order",
    "item_already_shipped",
    "item_already_delivered",
    "item_canceled",
    "target_not_in_order",
    "split_delivery_disabled",
]


class RefusedSplitItem(Contract):
    item_id: int
    reason: SplitRejectionReason
    state: str | None = None


class ShipmentSplitRejected(Event):
    """Nothing was moved; `reason` is the first problem, `refused_items` every item-level one."""

    TOPIC: ClassVar[str] = "shipment.split_rejected"
    event_type: Literal["shipment.split_rejected"] = "shipment.split_rejected"
    reason: SplitRejectionReason
    message: str
    item_ids: list[int]
    refused_items: list[RefusedSplitItem] = Field(default_factory=list)


class ShipmentSplit(Event):
    """Items moved from one shipment to another (one event per source shipment)."""

    TOPIC: ClassVar[str] = "shipment.split"
    event_type: Literal["shipment.split"] = "shipment.split"
    from_shipment_id: int
    to_shipment_id: int
    item_id_ranges: ItemIdRanges = Field(description="The moved items as inclusive [first, last] id ranges.")
    to_shipment_created: bool
    from_shipment_removed: bool

    @property
    def item_ids(self) -> list[int]:
        return from_ranges(self.item_id_ranges)


class ShipmentUpdated(Event):
    """A shipment as it is now, after a split or when its status followed its items."""

    TOPIC: ClassVar[str] = "shipment.updated"
    event_type: Literal["shipment.updated"] = "shipment.updated"
    shipment_id: int
    status: ShipmentStatus
    address: Address
    method: ShipmentMethod
    requested_delivery_date: dt.date | None = None
    expense: Money
    item_id_ranges: ItemIdRanges = Field(description="The shipment's items as inclusive [first, last] id ranges.")
    removed: bool = Field(default=False, description="True when the shipment was left empty and removed.")
