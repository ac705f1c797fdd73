"""Items read back from their groups: each id with its line's SKU and item quantity, in id order."""

from __future__ import annotations

import json

from services.order_state.domain.process.plugins import ItemFacts
from services.order_state.state_store import items_of

# Line 1: ids 10-13; line 2: ids 14 and 20-21 (a later split of the same line, as after a shipment split).
LINES = json.dumps(
    [
        {"line_number": 1, "sku": "A", "item_quantity": 1, "item_id_ranges": [[10, 13]]},
        {"line_number": 2, "sku": "B", "item_quantity": 5, "item_id_ranges": [[14, 14], [20, 21]]},
    ]
)


def test_one_group_across_lines_gives_every_item_with_its_line():
    # One span [10, 22) over both lines and the gap between them (ids 15-19 are nobody's).
    assert items_of(LINES, [10], [22], ["new"]) == [
        *(ItemFacts(i, "A", 1, "new") for i in range(10, 14)),
        ItemFacts(14, "B", 5, "new"),
        ItemFacts(20, "B", 5, "new"),
        ItemFacts(21, "B", 5, "new"),
    ]


def test_spans_of_several_groups_come_back_in_id_order_with_their_states():
    assert items_of(LINES, [11, 13, 21], [12, 15, 22], ["paid", "new", "paid"]) == [
        ItemFacts(11, "A", 1, "paid"),
        ItemFacts(13, "A", 1, "new"),
        ItemFacts(14, "B", 5, "new"),
        ItemFacts(21, "B", 5, "paid"),
    ]


def test_a_span_inside_one_line_and_no_spans():
    assert items_of(LINES, [12], [13], ["new"]) == [ItemFacts(12, "A", 1, "new")]
    assert items_of(LINES, [], [], []) == []


def test_a_big_line_expands_without_a_look_at_each_line():
    lines = json.dumps([{"line_number": 1, "sku": "BULK", "item_quantity": 1, "item_id_ranges": [[1, 100_000]]}])
    items = items_of(lines, [1, 50_001], [50_001, 100_001], ["paid", "new"])
    assert len(items) == 100_000 and items[0] == ItemFacts(1, "BULK", 1, "paid")
    assert items[50_000] == ItemFacts(50_001, "BULK", 1, "new") and items[-1].id == 100_000
