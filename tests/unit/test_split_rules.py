"""Which splits are allowed, and a shipment's status from its items' states (pure rules)."""

from __future__ import annotations

import pytest

from services.shipping.domain.splitting import Placement, StateMap, decide_split, shipment_status

STATES = StateMap(
    shipped=frozenset({"shipped"}), delivered=frozenset({"delivered", "closed"}), canceled=frozenset({"cancelled"})
)
PLACEMENTS = {
    1: Placement(1, 10, "payment pending"),
    2: Placement(2, 10, "paid"),
    3: Placement(3, 11, None),  # no state heard of yet: still movable
    4: Placement(4, 11, "shipped"),
    5: Placement(5, 11, "closed"),
    6: Placement(6, 12, "cancelled"),
}


def decide(item_ids, target=None, enabled=True, placements=PLACEMENTS):
    return decide_split(
        order_reference="DE--1",
        placements=placements,
        item_ids=item_ids,
        target_shipment_id=target,
        order_shipment_ids={10, 11, 12},
        states=STATES,
        split_delivery_enabled=enabled,
    )


def test_allowed_moves_are_grouped_by_source_shipment():
    decision = decide([1, 2, 3, 1])
    assert not decision.rejected
    assert decision.moves == {10: [1, 2], 11: [3]}


def test_items_already_in_the_target_do_not_move():
    assert decide([1, 3], target=11).moves == {10: [1]}


@pytest.mark.parametrize(
    ("items", "reason", "message"),
    [
        ([1, 99], "item_not_in_order", "item 99 is not an item of order DE--1; nothing was moved"),
        ([4], "item_already_shipped", "item 4 is already shipped (state 'shipped'); nothing was moved"),
        ([5], "item_already_delivered", "item 5 is already delivered (state 'closed'); nothing was moved"),
        ([6, 4], "item_canceled", "item 6 is canceled (state 'cancelled') (1 more refused); nothing was moved"),
    ],
)
def test_refused_items_reject_the_whole_request(items, reason, message):
    decision = decide(items)
    assert decision.reason == reason
    assert decision.message == message
    assert decision.moves == {}


def test_every_refused_item_is_named():
    decision = decide([4, 5, 6, 99, 1])
    assert [(r.item_id, r.reason, r.state) for r in decision.refused] == [
        (4, "item_already_shipped", "shipped"),
        (5, "item_already_delivered", "closed"),
        (6, "item_canceled", "cancelled"),
        (99, "item_not_in_order", None),
    ]


def test_target_must_be_the_orders_and_the_order_must_exist():
    assert decide([1], target=77).reason == "target_not_in_order"
    assert decide([1], placements={}).reason == "unknown_order"


def test_split_delivery_switched_off_rejects_every_split():
    decision = decide([1], enabled=False)
    assert decision.reason == "split_delivery_disabled"
    assert decision.message == "split delivery is switched off: one shipment per order"


@pytest.mark.parametrize(
    ("states", "status"),
    [
        (["paid", "paid"], "new"),
        (["shipped", "paid"], "new"),
        (["shipped", "shipped"], "shipped"),
        (["shipped", "delivered"], "shipped"),
        (["delivered", "closed"], "delivered"),
        (["delivered", "cancelled"], "delivered"),
        (["cancelled", "cancelled"], "canceled"),
        ([None], "new"),
    ],
)
def test_a_shipment_follows_its_items(states, status):
    assert shipment_status(states, STATES) == status
