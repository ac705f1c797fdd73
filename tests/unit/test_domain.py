"""Pure domain rules: splitting, shipment grouping, invoice figures and numbering."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from schemas import OrderCreated, OrderLine, to_ranges
from services.invoicing.domain.document import compute_figures
from services.invoicing.domain.numbering import format_invoice_reference
from services.order_state.domain.splitting import ItemSplit, split_line
from services.samples import sample_order
from services.shipping.domain.grouping import group_items, normalise_address, shipment_key


def test_splittable_line_becomes_one_item_per_unit():
    assert split_line(5, is_quantity_splittable=True) == ItemSplit(5, 1)


def test_non_splittable_line_stays_one_item():
    assert split_line(1_000_000, is_quantity_splittable=False) == ItemSplit(1, 1_000_000)


def test_threshold_stops_splitting_but_bundles_always_split():
    assert split_line(10, is_quantity_splittable=True, threshold=10) == ItemSplit(1, 10)
    assert split_line(9, is_quantity_splittable=True, threshold=10) == ItemSplit(9, 1)
    assert split_line(10, is_quantity_splittable=False, threshold=10, is_bundle=True) == ItemSplit(10, 1)


def test_split_refuses_empty_lines():
    with pytest.raises(ValueError, match="at least 1"):
        split_line(0, is_quantity_splittable=True)


def created_from_sample(number: int = 3) -> OrderCreated:
    placed = sample_order(number, run="U1")
    next_id = iter(range(1, 1000))
    lines = []
    for index, line in enumerate(placed.lines, start=1):
        count = line.quantity if line.is_quantity_splittable else 1
        lines.append(
            OrderLine(
                line_number=index,
                sku=line.sku,
                name=line.name,
                quantity=line.quantity,
                unit_price=line.unit_price,
                tax_rate=line.tax_rate,
                is_quantity_splittable=line.is_quantity_splittable,
                shipment=line.shipment,
                item_id_ranges=to_ranges([next(next_id) for _ in range(count)]),
                item_count=count,
                item_quantity=1 if line.is_quantity_splittable else line.quantity,
            )
        )
    return OrderCreated(
        order_reference=placed.order_reference,
        store=placed.store,
        locale=placed.locale,
        currency=placed.currency,
        price_mode=placed.price_mode,
        customer=placed.customer,
        billing_address=placed.billing_address,
        process_name="OmsDefault01",
        payment_method=placed.payment_method,
        initial_state="new",
        lines=lines,
        totals=placed.totals,
        placed_at=dt.datetime.now(dt.UTC),
    )


def test_address_case_and_spaces_do_not_make_another_shipment():
    order = created_from_sample()
    shipment = order.lines[0].shipment
    shouting = shipment.model_copy(
        update={
            "address": shipment.address.model_copy(
                update={"city": "  BERLIN ", "address1": "JULIE-WOLFTHORN-STRASSE 1"}
            )
        }
    )
    assert normalise_address({"city": "  BERLIN  Mitte "}) == {"city": "berlin mitte"}
    # Case folding, not lower(): "STRASSE" is how "Straße" is written in capitals.
    assert shipment_key(shipment) == shipment_key(shouting)
    elsewhere = shipment.model_copy(update={"address": shipment.address.model_copy(update={"zip_code": "10117"})})
    assert shipment_key(shipment) != shipment_key(elsewhere)


def test_items_group_by_address_method_and_date():
    order = created_from_sample(3)
    groups = group_items(order.lines)
    assert [sorted(group.item_ids) for group in groups] == [[1, 2, 3], [4]]
    later = order.lines[2].shipment.model_copy(update={"requested_delivery_date": dt.date(2030, 1, 1)})
    lines = [*order.lines, order.lines[2].model_copy(update={"shipment": later, "item_id_ranges": [(99, 99)]})]
    assert len(group_items(lines)) == 3


def test_split_delivery_off_gives_one_shipment():
    groups = group_items(created_from_sample(3).lines, split_delivery=False)
    assert len(groups) == 1 and sorted(groups[0].item_ids) == [1, 2, 3, 4]


def test_invoice_figures_gross_mode():
    figures = compute_figures(created_from_sample(3))
    assert figures.subtotal == 2 * 1999 + 3 * 4999 + 89900
    assert figures.expense_total == 490 + 1290
    assert figures.grand_total == figures.subtotal + figures.expense_total
    # 19 % contained in the gross amounts, per line and expense, rounded half up.
    assert figures.tax_total == sum(figures.tax_by_rate.values())
    assert abs(figures.tax_total - round(figures.grand_total * 19 / 119)) <= len(figures.lines) + 2


def test_invoice_figures_net_mode_adds_tax():
    order = created_from_sample(1).model_copy(update={"price_mode": "NET_MODE"})
    figures = compute_figures(order)
    assert figures.grand_total == figures.subtotal + figures.expense_total + figures.tax_total
    assert figures.tax_total == round((2 * 1999) * 0.19) + round(3 * 4999 * 0.19) + round(490 * 0.19)


def test_invoice_reference_format():
    assert format_invoice_reference("{store}-INV-{number:06d}", "DE", 7) == "DE-INV-000007"
    with pytest.raises(ValueError, match="may use"):
        format_invoice_reference("{shop}-{number}", "DE", 1)


def test_order_created_lines_carry_item_ids_as_ranges():
    order = created_from_sample(3)
    lines = json.loads(order.model_dump_json())["lines"]
    assert [line["item_id_ranges"] for line in lines] == [[[1, 2]], [[3, 3]], [[4, 4]]]
    assert order.lines[0].item_ids == [1, 2]
