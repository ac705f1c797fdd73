"""Order contracts: `order.placed` (from checkout) and `order.created` (from order_state)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, StringConstraints, model_validator

from schemas.envelope import NO_CONTROL_CHARACTERS, Contract, CurrencyCode, Email, Event, MinorUnits
from schemas.items import ItemIdRanges, from_ranges

# Names and address lines end up in e-mail headers, documents and ERPs: control characters (CR/LF above
# all: header injection) are refused at the door.
# All checked by pydantic-core: surrounding whitespace stripped, then length, then the pattern.
NonEmpty = Annotated[
    str, StringConstraints(min_length=1, max_length=255, strip_whitespace=True, pattern=NO_CONTROL_CHARACTERS)
]
Text = Annotated[str, StringConstraints(max_length=255, pattern=NO_CONTROL_CHARACTERS)]
ShortCode = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
Locale = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$")]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]


class Address(Contract):
    salutation: Text | None = None
    first_name: NonEmpty
    last_name: NonEmpty
    company: Text | None = None
    address1: NonEmpty
    address2: Text | None = None
    address3: Text | None = None
    zip_code: NonEmpty
    city: NonEmpty
    country: Country = Field(description="ISO 3166-1 alpha-2 country code.")
    phone: Text | None = None
    email: Email | None = None


class Customer(Contract):
    customer_reference: NonEmpty | None = Field(default=None, description="Absent for guest checkouts.")
    email: Email
    salutation: Text | None = None
    first_name: NonEmpty
    last_name: NonEmpty


class ShipmentMethod(Contract):
    key: ShortCode
    name: NonEmpty
    carrier: Text | None = None
    price: MinorUnits = Field(ge=0, description="Shipment expense in minor units, gross or net as price_mode.")
    tax_rate: float = Field(default=0, ge=0, le=100, description="Percent, e.g. 19.0.")


class Shipment(Contract):
    address: Address
    method: ShipmentMethod
    requested_delivery_date: dt.date | None = None


class Totals(Contract):
    subtotal: MinorUnits = Field(description="Sum of line totals.")
    expense_total: MinorUnits = Field(default=0, description="Shipment expenses.")
    discount_total: MinorUnits = 0
    tax_total: MinorUnits
    grand_total: MinorUnits


class PlacedLine(Contract):
    sku: ShortCode
    name: NonEmpty
    quantity: int = Field(ge=1, le=10_000_000)
    unit_price: MinorUnits = Field(ge=0, description="Per unit, gross or net as the order's price_mode.")
    tax_rate: float = Field(ge=0, le=100, description="Percent, e.g. 19.0.")
    is_quantity_splittable: bool = True
    is_bundle: bool = Field(default=False, description="Bundle items always split into items of quantity 1.")
    shipment: Shipment


class OrderPlaced(Event):
    """Published by checkout when a customer places an order."""

    TOPIC: ClassVar[str] = "order.placed"
    event_type: Literal["order.placed"] = "order.placed"
    store: ShortCode
    locale: Locale
    currency: CurrencyCode
    price_mode: Literal["GROSS_MODE", "NET_MODE"] = "GROSS_MODE"
    customer: Customer
    billing_address: Address
    process_name: ShortCode | None = Field(default=None, description="OMS process; default chosen if absent.")
    payment_method: ShortCode
    lines: list[PlacedLine] = Field(min_length=1, max_length=10_000)
    totals: Totals
    placed_at: dt.datetime | None = None

    @model_validator(mode="after")
    def _subtotal_matches_lines(self) -> OrderPlaced:
        _check_subtotal([(line.unit_price, line.quantity) for line in self.lines], self.totals.subtotal)
        return self

    @classmethod
    def validate_document(cls, document: dict[str, Any]) -> dict[str, Any]:
        """The model's own rule on the plain dict `services.runtime.documents` validates order.placed into."""
        lines = [(line["unit_price"], line["quantity"]) for line in document["lines"]]
        _check_subtotal(lines, document["totals"]["subtotal"])
        return document


def _check_subtotal(lines: list[tuple[int, int]], subtotal: int) -> None:
    added = sum(unit_price * quantity for unit_price, quantity in lines)
    if added != subtotal:
        raise ValueError(f"totals.subtotal is {subtotal} but the lines add up to {added}")


class OrderLine(Contract):
    """A placed line as stored, with the sales order items it became."""

    line_number: int = Field(ge=1)
    sku: str
    name: str
    quantity: int
    unit_price: MinorUnits
    tax_rate: float
    is_quantity_splittable: bool
    is_bundle: bool = False
    shipment: Shipment
    item_id_ranges: ItemIdRanges = Field(
        description="The sales order items of this line as inclusive [first, last] id ranges, so that a line of "
        "100,000 items stays a few bytes and order.created fits Kafka's 1 MB message limit."
    )
    item_count: int = Field(description="Number of sales order items of this line.")
    item_quantity: int = Field(description="Quantity carried by each item: 1 when the line was split.")

    @property
    def item_ids(self) -> list[int]:
        return from_ranges(self.item_id_ranges)


class OrderCreated(Event):
    """Published by order_state once an order and its items are stored in their initial state. One message per
    order: each line carries its items as id ranges, so the size grows with the lines, not the units. Relays
    publish compressed record batches (Kafka's 1 MB limit applies after compression): an order of the
    contract's 10,000 lines, each with its shipment, is about 7 MB as written and far less compressed. One
    that would pass 16,000,000 bytes as written (lines and addresses of hundreds of characters) is refused at
    placement."""

    TOPIC: ClassVar[str] = "order.created"
    event_type: Literal["order.created"] = "order.created"
    store: str
    locale: str
    currency: CurrencyCode
    price_mode: Literal["GROSS_MODE", "NET_MODE"]
    customer: Customer
    billing_address: Address
    process_name: str
    payment_method: str
    initial_state: str
    lines: list[OrderLine]
    totals: Totals
    placed_at: dt.datetime


class OrderCustomReferenceUpdateRequested(Event):
    """Back office sets (value) or clears (value null) an order's custom reference. The value is checked by
    order_state, which answers a breach of the rules with `order.custom_reference_update_rejected`."""

    TOPIC: ClassVar[str] = "order.custom_reference_update_requested"
    event_type: Literal["order.custom_reference_update_requested"] = "order.custom_reference_update_requested"
    value: str | None = Field(description="The new custom order reference; null clears it.")
    requested_by: str | None = Field(default=None, max_length=255)
    requested_by_role: Literal["back_office", "customer"] = "back_office"


class OrderCustomReferenceChanged(Event):
    TOPIC: ClassVar[str] = "order.custom_reference_changed"
    event_type: Literal["order.custom_reference_changed"] = "order.custom_reference_changed"
    old_value: str | None
    new_value: str | None
    requested_by: str | None = None


class OrderCustomReferenceUpdateRejected(Event):
    TOPIC: ClassVar[str] = "order.custom_reference_update_rejected"
    event_type: Literal["order.custom_reference_update_rejected"] = "order.custom_reference_update_rejected"
    reason: Literal["unknown_order", "back_office_only", "too_long", "control_characters", "empty"]
    message: str


CancelRejectionReason = Literal[
    "window_expired",
    "not_cancellable_state",
    "not_your_order",
    "unknown_order",
    "whole_order_only",
    "unknown_items",
]


class OrderCancelRequested(Event):
    """A customer (whole order, within the window, own order) or the back office (whole order, one shipment
    or chosen items) asks to cancel."""

    TOPIC: ClassVar[str] = "order.cancel_requested"
    event_type: Literal["order.cancel_requested"] = "order.cancel_requested"
    requested_by_role: Literal["customer", "back_office"]
    customer_reference: str | None = Field(default=None, max_length=255, description="Who asks, when a customer.")
    reason: str = Field(default="", max_length=1000)
    item_ids: list[int] | None = Field(default=None, min_length=1)
    shipment_id: int | None = None

    @model_validator(mode="after")
    def _one_scope(self) -> OrderCancelRequested:
        if self.item_ids is not None and self.shipment_id is not None:
            raise ValueError("give item_ids or shipment_id, not both")
        return self


class CancelRefusedItem(Contract):
    item_id: int
    state: str | None
    reason: str


class OrderCancelRejected(Event):
    """Nothing was canceled."""

    TOPIC: ClassVar[str] = "order.cancel_rejected"
    event_type: Literal["order.cancel_rejected"] = "order.cancel_rejected"
    reason: CancelRejectionReason
    message: str
    refused_items: list[CancelRefusedItem] = Field(default_factory=list)


class OrderCanceled(Event):
    """Items canceled (the process's cancel event fired on them). `whole_order`: every item of the order is
    canceled now."""

    TOPIC: ClassVar[str] = "order.canceled"
    event_type: Literal["order.canceled"] = "order.canceled"
    requested_by_role: Literal["customer", "back_office"]
    reason: str = ""
    item_id_ranges: list[tuple[int, int]]
    whole_order: bool
