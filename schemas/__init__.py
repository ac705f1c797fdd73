"""Event contracts shared by every service. One pydantic model per event; see `registry`."""

from schemas.envelope import Event, Money
from schemas.invoices import InvoiceGenerated, InvoiceSent
from schemas.items import ItemStateChanged, ItemTransition
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
from schemas.shipments import ShipmentCreated

__all__ = [
    "EVENT_MODELS",
    "Address",
    "Customer",
    "Event",
    "InvoiceGenerated",
    "InvoiceSent",
    "ItemStateChanged",
    "ItemTransition",
    "Money",
    "OrderCreated",
    "OrderLine",
    "OrderPlaced",
    "PlacedLine",
    "Shipment",
    "ShipmentCreated",
    "ShipmentMethod",
    "Totals",
    "model_for_topic",
]
