"""Item state machine contracts."""

from __future__ import annotations

from typing import ClassVar, Literal

from schemas.envelope import Contract, Event


class ItemTransition(Contract):
    item_id: int
    from_state: str
    to_state: str


class ItemStateChanged(Event):
    """One batch of transitions of one order's items, caused by one event."""

    TOPIC: ClassVar[str] = "item.state_changed"
    event_type: Literal["item.state_changed"] = "item.state_changed"
    process_name: str
    event: str | None = None
    transitions: list[ItemTransition]
