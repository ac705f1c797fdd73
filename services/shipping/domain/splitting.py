"""Split delivery after placement: which moves are allowed, and what a shipment's status is. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from schemas.shipments import RefusedSplitItem, ShipmentStatus, SplitRejectionReason

ItemStatus = Literal["open", "shipped", "delivered", "canceled"]


@dataclass(frozen=True)
class StateMap:
    """Which process states mean an item has left the warehouse, arrived, or will never ship."""

    shipped: frozenset[str]
    delivered: frozenset[str]
    canceled: frozenset[str]

    def status(self, state: str | None) -> ItemStatus:
        if state in self.canceled:
            return "canceled"
        if state in self.delivered:
            return "delivered"
        if state in self.shipped:
            return "shipped"
        return "open"


@dataclass(frozen=True)
class Placement:
    item_id: int
    shipment_id: int
    state: str | None


@dataclass
class SplitDecision:
    """Either a rejection (reason, message, refused items) or the items to move, grouped by source."""

    reason: SplitRejectionReason | None = None
    message: str = ""
    refused: list[RefusedSplitItem] = field(default_factory=list)
    moves: dict[int, list[int]] = field(default_factory=dict)  # source shipment -> items

    @property
    def rejected(self) -> bool:
        return self.reason is not None


_REFUSAL: dict[ItemStatus, tuple[SplitRejectionReason, str]] = {
    "shipped": ("item_already_shipped", "is already shipped"),
    "delivered": ("item_already_delivered", "is already delivered"),
    "canceled": ("item_canceled", "is canceled"),
}


def decide_split(
    *,
    order_reference: str,
    placements: dict[int, Placement],
    item_ids: Iterable[int],
    target_shipment_id: int | None,
    order_shipment_ids: set[int],
    states: StateMap,
    split_delivery_enabled: bool,
) -> SplitDecision:
    """All or nothing: one refused item rejects the whole request and nothing moves."""
    wanted = list(dict.fromkeys(item_ids))
    if not split_delivery_enabled:
        return SplitDecision("split_delivery_disabled", "split delivery is switched off: one shipment per order")
    if not placements:
        return SplitDecision("unknown_order", f"there is no order {order_reference!r} with shipments")
    if target_shipment_id is not None and target_shipment_id not in order_shipment_ids:
        return SplitDecision(
            "target_not_in_order", f"shipment {target_shipment_id} is not a shipment of order {order_reference}"
        )
    refused: list[RefusedSplitItem] = []
    for item_id in wanted:
        placement = placements.get(item_id)
        if placement is None:
            refused.append(RefusedSplitItem(item_id=item_id, reason="item_not_in_order"))
            continue
        status = states.status(placement.state)
        if status != "open":
            refused.append(RefusedSplitItem(item_id=item_id, reason=_REFUSAL[status][0], state=placement.state))
    if refused:
        first = refused[0]
        what = (
            f"item {first.item_id} is not an item of order {order_reference}"
            if first.reason == "item_not_in_order"
            else f"item {first.item_id} {_REFUSAL[states.status(first.state)][1]} (state {first.state!r})"
        )
        more = f" ({len(refused) - 1} more refused)" if len(refused) > 1 else ""
        return SplitDecision(first.reason, f"{what}{more}; nothing was moved", refused)
    moves: dict[int, list[int]] = {}
    for item_id in wanted:
        source = placements[item_id].shipment_id
        if source != target_shipment_id:
            moves.setdefault(source, []).append(item_id)
    return SplitDecision(moves=moves)


def shipment_status(item_states: Iterable[str | None], states: StateMap) -> ShipmentStatus:
    """All canceled: canceled. Otherwise, ignoring canceled items: all delivered: delivered; all shipped
    (or delivered): shipped; else new."""
    statuses = [states.status(state) for state in item_states]
    live = [status for status in statuses if status != "canceled"]
    if statuses and not live:
        return "canceled"
    if live and all(status == "delivered" for status in live):
        return "delivered"
    if live and all(status in ("shipped", "delivered") for status in live):
        return "shipped"
    return "new"
