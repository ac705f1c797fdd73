"""Event contracts shared by every service. One pydantic model per event; see `registry`."""

from schemas.envelope import Event, Money
from schemas.invoices import (
    InvoiceGenerated,
    InvoiceGenerationRequested,
    InvoiceResendRejected,
    InvoiceResendRequested,
    InvoiceSent,
)
from schemas.items import (
    ItemStateChanged,
    OrderItemEventRejected,
    OrderItemEventRequested,
    RefusedItem,
    StateChange,
    from_ranges,
    to_ranges,
)
from schemas.orders import (
    Address,
    Customer,
    OrderCreated,
    OrderLine,
    OrderPlaced,
    PlacedLine,
    Shipment,
    ShipmentMethod,
    Totals,
)
from schemas.registry import EVENT_MODELS, model_for_topic
from schemas.shipments import (
    RefusedSplitItem,
    ShipmentCreated,
    ShipmentSplit,
    ShipmentSplitRejected,
    ShipmentSplitRequested,
    ShipmentUpdated,
)

__all__ = [
    "EVENT_MODELS",
    "Address",
    "Customer",
    "Event",
    "InvoiceGenerated",
    "InvoiceGenerationRequested",
    "InvoiceResendRejected",
    "InvoiceResendRequested",
    "InvoiceSent",
    "ItemStateChanged",
    "Money",
    "OrderCreated",
    "OrderItemEventRejected",
    "OrderItemEventRequested",
    "OrderLine",
    "OrderPlaced",
    "PlacedLine",
    "RefusedItem",
    "RefusedSplitItem",
    "Shipment",
    "ShipmentCreated",
    "ShipmentMethod",
    "ShipmentSplit",
    "ShipmentSplitRejected",
    "ShipmentSplitRequested",
    "ShipmentUpdated",
    "StateChange",
    "Totals",
    "from_ranges",
    "model_for_topic",
    "to_ranges",
]
