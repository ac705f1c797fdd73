"""What back-office users read: the order matrix and the order page, from the command line."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import text

from tests.support import item_states, new_order, oms, publish_orders, wait_for_states


async def entered_ago(conn, item_id: int, ago: timedelta) -> None:
    """Let one item have entered its state `ago`: its group splits, as when an event moves it."""
    await conn.execute(
        text(
            """WITH old AS (
                   DELETE FROM order_state.sales_order_item_group WHERE item_ids @> CAST(:id AS bigint)
                   RETURNING order_id, item_ids, state, state_changed_at, shipment_id
               )
               INSERT INTO order_state.sales_order_item_group (order_id, item_ids, state, state_changed_at, shipment_id)
               SELECT order_id, item_ids - int8multirange(int8range(:id, :id + 1)), state, state_changed_at,
                      shipment_id FROM old WHERE item_ids <> int8multirange(int8range(:id, :id + 1))
               UNION ALL
               SELECT order_id, int8multirange(int8range(:id, :id + 1)), state, now() - CAST(:ago AS interval),
                      shipment_id FROM old"""
        ),
        {"id": item_id, "ago": ago},
    )


def matrix(env) -> dict[tuple[str, str], dict]:
    result = oms("matrix", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return {(row["process"], row["state"]): row for row in json.loads(result.stdout)}


async def test_matrix_counts_items_by_time_in_state(settings, services, engine, servers):
    order = new_order(3, process_name="Prepayment01")
    reference = order["order_reference"]
    await publish_orders(settings, [order])
    items = sorted(await wait_for_states(engine, reference, {"Payment - waiting"}))
    before = matrix(servers.env)[("Prepayment01", "Payment - waiting")]

    async with engine.begin() as conn:
        await entered_ago(conn, items[0], timedelta(days=3))
        await entered_ago(conn, items[1], timedelta(days=10))
    after = matrix(servers.env)[("Prepayment01", "Payment - waiting")]
    assert after["under_1_day"] == before["under_1_day"] - 2
    assert after["1_to_7_days"] == before["1_to_7_days"] + 1
    assert after["older"] == before["older"] + 1
    assert after["total"] == before["total"]

    table = oms("matrix", env=servers.env)
    assert table.returncode == 0
    assert "Order matrix" in table.stdout and "Prepayment01" in table.stdout and "Payment - waiting" in table.stdout


async def test_order_page_shows_items_by_state_time_history_and_possible_events(settings, services, engine, servers):
    order = new_order(3)
    reference = order["order_reference"]
    await publish_orders(settings, [order])
    await wait_for_states(engine, reference, {"payment pending"})

    result = oms("order", "show", reference, "--json", env=servers.env)
    assert result.returncode == 0, result.stderr
    page = json.loads(result.stdout)
    assert page["order"]["order_reference"] == reference
    assert page["order"]["process_name"] == "OmsDefault01"
    (state,) = page["states"]
    assert state["state"] == "payment pending"
    assert state["items"] == len(await item_states(engine, reference))
    assert state["manual_events"] == ["pay", "cancel"]
    assert state["possible_events"] == ["pay", "cancel"]
    shown = state["shown"][0]
    assert 0 <= shown["in_state_seconds"] < 600
    assert [(h["from_state"], h["to_state"], h["event"]) for h in shown["history"]] == [
        (None, "new", None),
        ("new", "payment pending", "authorize"),
    ]

    text_page = oms("order", "show", reference, env=servers.env)
    assert text_page.returncode == 0
    assert f"Order {reference}" in text_page.stdout
    assert "manual events now: pay, cancel" in text_page.stdout
    # The customer reference, which `oms order cancel --as-customer` asks for, next to the e-mail address.
    customer = order["customer"]
    assert f"customer {customer['customer_reference']} ({customer['email']})" in text_page.stdout

    missing = oms("order", "show", "DE--NOPE", env=servers.env)
    assert missing.returncode != 0
    assert "there is no order 'DE--NOPE'" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_trigger_refuses_contradictory_scope_without_a_traceback(servers):
    result = oms("order", "trigger", "DE--1", "pay", "--items", "1", "--shipment", "2", env=servers.env)
    assert result.returncode != 0
    assert "give --items or --shipment, not both" in result.stderr
    assert "Traceback" not in result.stderr
