"""Item state machine contracts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from schemas.envelope import Contract, Event

ItemIdRanges = list[tuple[int, int]]


def to_ranges(item_ids: Sequence[int] | set[int]) -> ItemIdRanges:
    """Sorted ids as inclusive [first, last] ranges: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    if type(item_ids) is range and item_ids.step == 1:  # consecutive ids (a line's new items)
        return [(item_ids.start, item_ids.stop - 1)] if item_ids else []
    count = len(item_ids)
    if count == 1:
        (only,) = item_ids
        return [(only, only)]
    if count:
        first, last = min(item_ids), max(item_ids)
        if last - first == count - 1 and len(set(item_ids)) == count:
            return [(first, last)]  # one run (an order's new items, a line's): no loop over the ids
    ranges: ItemIdRanges = []
    for item_id in sorted(item_ids):
        if ranges and item_id == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], item_id)
        else:
            ranges.append((item_id, item_id))
    return ranges


def from_ranges(ranges: ItemIdRanges) -> list[int]:
    return [item_id for first, last in ranges for item_id in range(first, last + 1)]


class StateChange(Contract):
    """Items that went from one state to another. Ids come as inclusive ranges so that an event on
    100,000 items stays a few bytes: [[101, 200]] is items 101 to 200."""

    from_state: str
    to_state: str
    item_id_ranges: ItemIdRanges = Field(min_length=1)

    @property
    def item_ids(self) -> list[int]:
        return from_ranges(self.item_id_ranges)


class ItemStateChanged(Event):
    """One batch of transitions of one order's items, caused by one event (with its onEnter chain)."""

    TOPIC: ClassVar[str] = "item.state_changed"
    event_type: Literal["item.state_changed"] = "item.state_changed"
    process_name: str
    event: str | None = Field(description="The event fired; null for transitions without an event.")
    changes: list[StateChange]


class OrderItemEventRequested(Event):
    """Back office or another system asks to fire an event for a whole order, one shipment or chosen items."""

    TOPIC: ClassVar[str] = "order.item_event_requested"
    event_type: Literal["order.item_event_requested"] = "order.item_event_requested"
    event: str = Field(min_length=1, max_length=255)
    item_ids: list[int] | None = Field(default=None, min_length=1, description="Chosen items; else all.")
    shipment_id: int | None = Field(default=None, description="Only the items of this shipment.")
    requested_by: str | None = Field(default=None, max_length=255)

    @model_validator(mode="after")
    def _one_scope(self) -> OrderItemEventRequested:
        if self.item_ids is not None and self.shipment_id is not None:
            raise ValueError("give item_ids or shipment_id, not both")
        return self


class RefusedItem(Contract):
    item_id: int
    state: str | None
    reason: str


class OrderItemEventRejected(Event):
    """The answer to a request that could not be carried out, for all or some items. Nothing changed for them."""

    TOPIC: ClassVar[str] = "order.item_event_rejected"
    event_type: Literal["order.item_event_rejected"] = "order.item_event_rejected"
    event: str
    reason: Literal["unknown_order", "unknown_event", "unknown_shipment", "not_possible"]
    message: str
    refused_items: list[RefusedItem] = Field(default_factory=list)
