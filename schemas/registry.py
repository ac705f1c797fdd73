"""Topic name -> contract model."""

from __future__ import annotations

from schemas.envelope import Event
from schemas.invoices import (
    InvoiceCreditNoteIssued,
    InvoiceGenerated,
    InvoiceGenerationRequested,
    InvoiceResendRejected,
    InvoiceResendRequested,
    InvoiceSent,
)
from schemas.items import ItemStateChanged, OrderItemEventRejected, OrderItemEventRequested
from schemas.orders import (
    OrderCanceled,
    OrderCancelRejected,
    OrderCancelRequested,
    OrderCreated,
    OrderCustomReferenceChanged,
    OrderCustomReferenceUpdateRejected,
    OrderCustomReferenceUpdateRequested,
    OrderPlaced,
)
from schemas.shipments import (
    ShipmentCreated,
    ShipmentSplit,
    ShipmentSplitRejected,
    ShipmentSplitRequested,
    ShipmentUpdated,
)

EVENT_MODELS: dict[str, type[Event]] = {
    model.TOPIC: model
    for model in (
        OrderPlaced,
        OrderCreated,
        OrderCustomReferenceUpdateRequested,
        OrderCustomReferenceChanged,
        OrderCustomReferenceUpdateRejected,
        OrderCancelRequested,
        OrderCancelRejected,
        OrderCanceled,
        ItemStateChanged,
        OrderItemEventRequested,
        OrderItemEventRejected,
        InvoiceGenerationRequested,
        InvoiceGenerated,
        InvoiceSent,
        InvoiceResendRequested,
        InvoiceResendRejected,
        InvoiceCreditNoteIssued,
        ShipmentCreated,
        ShipmentSplitRequested,
        ShipmentSplitRejected,
        ShipmentSplit,
        ShipmentUpdated,
    )
}


def model_for_topic(topic: str) -> type[Event]:
    try:
        return EVENT_MODELS[topic]
    except KeyError:
        raise KeyError(f"no contract for topic {topic!r}; known: {', '.join(sorted(EVENT_MODELS))}") from None
