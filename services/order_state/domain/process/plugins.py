"""Conditions, commands and timeout processors, registered by the names process files use.

The stand-ins cover the names of Spryker's demo processes, so those files load and run unchanged;
a shop registers its own implementations under the same or new names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from schemas.envelope import Event


class OrderFacts(NamedTuple):
    """What conditions and commands know of an order (immutable; a named tuple is made in a quarter of the time
    a frozen dataclass takes, and placement makes one per order)."""

    order_id: int
    order_reference: str
    custom_order_reference: str | None
    store: str
    process_name: str
    payment_method: str
    currency: str
    grand_total: int
    placed_at: datetime
    customer_reference: str | None = None
    correlation_id: Any = None


class ItemFacts(NamedTuple):
    id: int
    sku: str
    quantity: int
    state: str


@dataclass
class CommandCall:
    """One command run for the items of one order that take one transition."""

    order: OrderFacts
    event: str
    source: str
    target: str
    item_ids: list[int]
    emitted: list[Event] = field(default_factory=list)

    def publish(self, event: Event) -> None:
        """Publish an event (through the outbox) if, and only if, the transition commits."""
        self.emitted.append(event)


class CommandFailed(Exception):
    """Raised by a command: the items stay in their source state and the error is logged."""


Condition = Callable[[OrderFacts, ItemFacts], bool]
Command = Callable[[CommandCall], None]
TimeoutProcessor = Callable[[OrderFacts, timedelta | None, datetime], datetime]


@dataclass
class PluginRegistry:
    conditions: dict[str, Condition] = field(default_factory=dict)
    commands: dict[str, Command] = field(default_factory=dict)
    timeout_processors: dict[str, TimeoutProcessor] = field(default_factory=dict)
    order_level: set[str] = field(default_factory=set)  # conditions that look at the order only

    def condition(self, name: str, *, order_level: bool = False) -> Callable[[Condition], Condition]:
        """Register a condition. `order_level=True` declares that it looks at the order only (payment, store,
        totals), never at the item: the engine then asks it once for a group of items, not once per item."""

        def register(function: Condition) -> Condition:
            self.conditions[name] = function
            if order_level:
                self.order_level.add(name)
            else:
                self.order_level.discard(name)
            return function

        return register

    def command(self, name: str) -> Callable[[Command], Command]:
        def register(function: Command) -> Command:
            self.commands[name] = function
            return function

        return register

    def timeout_processor(self, name: str) -> Callable[[TimeoutProcessor], TimeoutProcessor]:
        def register(function: TimeoutProcessor) -> TimeoutProcessor:
            self.timeout_processors[name] = function
            return function

        return register

    def copy(self) -> PluginRegistry:
        return PluginRegistry(
            dict(self.conditions), dict(self.commands), dict(self.timeout_processors), set(self.order_level)
        )


DECLINED_PAYMENT_METHODS = frozenset({"dummyPaymentDeclined"})
UNPAID_PAYMENT_METHODS = frozenset({"dummyPaymentUnpaid"})


def _no_op(call: CommandCall) -> None:
    """A stand-in command: it succeeds and leaves its trace in the transition log."""


def default_registry() -> PluginRegistry:
    registry = PluginRegistry()

    @registry.condition("DummyPayment/IsAuthorized", order_level=True)
    def is_authorized(order: OrderFacts, item: ItemFacts) -> bool:
        return order.payment_method not in DECLINED_PAYMENT_METHODS

    @registry.condition("DummyPayment/IsPayed", order_level=True)
    def is_payed(order: OrderFacts, item: ItemFacts) -> bool:
        return order.payment_method not in UNPAID_PAYMENT_METHODS | DECLINED_PAYMENT_METHODS

    @registry.condition("GiftCard/IsGiftCard")
    def is_gift_card(order: OrderFacts, item: ItemFacts) -> bool:
        return item.sku.upper().startswith("GIFT")

    @registry.condition("Oms/Always", order_level=True)
    def always(order: OrderFacts, item: ItemFacts) -> bool:
        return True

    @registry.command("Invoice/Generate")
    def generate_invoice(call: CommandCall) -> None:
        from schemas.invoices import InvoiceGenerationRequested
        from schemas.items import to_ranges

        call.publish(
            InvoiceGenerationRequested(
                order_reference=call.order.order_reference,
                custom_order_reference=call.order.custom_order_reference,
                correlation_id=call.order.correlation_id,
                item_id_ranges=to_ranges(call.item_ids),
            )
        )

    for name in (
        "DummyPayment/Pay",
        "DummyPayment/Refund",
        "DummyPayment/Authorize",
        "Oms/SendOrderConfirmation",
        "Oms/SendOrderShipped",
        "Oms/SendPaymentReminder",
        "GiftCard/CreateGiftCard",
        "GiftCardMailConnector/ShipGiftCard",
        "Return/StartReturn",
        "Warehouse/Allocate",
    ):
        registry.commands[name] = _no_op

    @registry.timeout_processor("OmsTimeout/Initiation")
    def initiation(order: OrderFacts, timeout: timedelta | None, entered_at: datetime) -> datetime:
        """Counted from when the order was placed, not from when the item entered the state."""
        return order.placed_at + (timeout or timedelta(hours=1))

    return registry
