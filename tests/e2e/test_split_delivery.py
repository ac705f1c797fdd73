"""Split delivery on the real broker and database: shipments at placement, back-office splits and
their refusals, shipments following their items, and split delivery switched off."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import asyncpg
import pytest

from services.runtime.db import asyncpg_dsn
from services.runtime.embedded import ServiceProcess, wait_until
from services.runtime.migrations import upgrade
from services.runtime.settings import Settings
from tests.support import (
    TopicReader,
    expand,
    item_states,
    new_order,
    oms,
    publish_orders,
    publish_raw,
    request_event,
    request_split,
    rows,
    settle,
    shipments_of,
    wait_for_states,
)

OFFICE = {
    "first_name": "Anna",
    "last_name": "Schmidt",
    "address1": "Alexanderplatz 1",
    "zip_code": "10178",
    "city": "Berlin",
    "country": "DE",
}
EXPRESS = {"key": "dhl_express", "name": "DHL Express", "carrier": "DHL", "price": 1290, "tax_rate": 19}


async def placed(settings, engine, order, shipments: int, state: str = "payment pending"):
    await publish_orders(settings, [order])
    await wait_for_states(engine, order["order_reference"], {state})
    return await wait_until(lambda: _all(engine, order["order_reference"], shipments), timeout=30)


async def _all(engine, reference, count):
    found = await shipments_of(engine, reference)
    return found if len(found) == count else None


async def answers(settings, topic: str, request: dict) -> list[dict]:
    async with TopicReader(settings, topic) as reader:
        await reader.wait_for(lambda _: [e for e in reader.events() if e["causation_id"] == request["event_id"]])
        return [e for e in reader.events() if e["causation_id"] == request["event_id"]]


async def test_items_move_into_a_new_shipment_from_the_command_line(settings, services, engine, servers, tmp_path):
    order = new_order(1)  # one shipment: home, standard
    reference = order["order_reference"]
    (home,) = await placed(settings, engine, order, 1)
    items = sorted(await item_states(engine, reference))
    address = tmp_path / "office.json"
    address.write_text(json.dumps(OFFICE))
    result = oms(
        "shipment",
        "split",
        reference,
        "--items",
        f"{items[0]},{items[1]}",
        "--address",
        str(address),
        "--method",
        "dhl_express",
        "--date",
        "2030-01-02",
        env={
            **servers.env,
            "OMS_SHIPMENT_METHODS": json.dumps({"dhl_express": {k: v for k, v in EXPRESS.items() if k != "key"}}),
        },
    )
    assert result.returncode == 0, result.stderr
    shipments = await wait_until(lambda: _all(engine, reference, 2))
    new_id = max(shipments)
    moved = f"{items[0]}-{items[1]}" if items[1] == items[0] + 1 else f"{items[0]}, {items[1]}"
    assert (
        result.stdout.strip() == f"moved 2 items of {reference} from shipment {home} to new shipment {new_id} ({moved})"
    )
    assert shipments[home]["items"] == items[2:]
    assert shipments[new_id] == {
        "status": "new",
        "method": "dhl_express",
        "expense": 1290,
        "date": dt.date(2030, 1, 2),
        "items": items[:2],
    }
    async with TopicReader(settings, "shipment.split") as reader:
        await reader.wait_for(lambda _: reader.events(reference))
        (split,) = reader.events(reference)
    assert (split["from_shipment_id"], split["to_shipment_id"], expand(split["item_id_ranges"])) == (
        home,
        new_id,
        items[:2],
    )
    assert split["to_shipment_created"] and not split["from_shipment_removed"]
    async with TopicReader(settings, "shipment.updated") as reader:
        await reader.wait_for(lambda _: len(reader.events(reference)) >= 2)
        updated = {e["shipment_id"]: e for e in reader.events(reference)}
    assert expand(updated[new_id]["item_id_ranges"]) == items[:2] and updated[new_id]["expense"] == {
        "amount": 1290,
        "currency": "EUR",
    }
    assert expand(updated[home]["item_id_ranges"]) == items[2:]

    # order_state learns which shipment the items are in now.
    async def learned():
        found = await rows(
            engine, "SELECT id, shipment_id FROM order_state.sales_order_item WHERE id = ANY(:ids)", ids=items[:2]
        )
        return all(row.shipment_id == new_id for row in found)

    await wait_until(learned)
    listing = oms("shipment", "list", reference, "--json", env=servers.env)
    assert listing.returncode == 0, listing.stderr
    assert [s["item_ids"] for s in json.loads(listing.stdout)] == [items[2:], items[:2]]

    refused = oms(
        "shipment", "split", reference, "--items", f"{items[2]},999999999", "--to", str(new_id), env=servers.env
    )
    assert refused.returncode == 1, (refused.stdout, refused.stderr)
    assert f"into shipment {new_id} refused (item_not_in_order): " in refused.stderr
    assert "\n  item 999999999 (not in the order): item_not_in_order" in refused.stderr
    queued = oms(
        "shipment", "split", reference, "--items", str(items[2]), "--to", str(new_id), "--no-wait", env=servers.env
    )
    assert queued.returncode == 0 and "refusals come as shipment.split_rejected" in queued.stdout


async def test_moving_the_last_items_removes_the_empty_shipment_and_a_repeat_moves_nothing(settings, services, engine):
    order = new_order(3)  # two shipments: home (3 items), office (1 item)
    reference = order["order_reference"]
    shipments = await placed(settings, engine, order, 2)
    home, office = sorted(shipments, key=lambda s: -len(shipments[s]["items"]))
    request = await request_split(settings, reference, shipments[office]["items"], target_shipment_id=home)
    await publish_raw(
        settings,
        "shipment.split_requested",  # the same request delivered twice
        [(reference.encode(), json.dumps(request).encode())],
    )
    after = await wait_until(lambda: _all(engine, reference, 1))
    assert after[home]["items"] == sorted(shipments[home]["items"] + shipments[office]["items"])
    await settle()
    (split,) = await answers(settings, "shipment.split", request)
    assert split["from_shipment_removed"] and not split["to_shipment_created"]
    removed = [e for e in await answers(settings, "shipment.updated", request) if e["removed"]]
    assert [e["shipment_id"] for e in removed] == [office]


async def test_every_refusal_has_its_reason_and_moves_nothing(settings, services, engine):
    order = new_order(3, process_name="Prepayment01")  # two shipments
    other = new_order(1)
    reference = order["order_reference"]
    shipments = await placed(settings, engine, order, 2, state="Payment - waiting")
    other_shipments = await placed(settings, engine, other, 1)
    home, office = sorted(shipments, key=lambda s: -len(shipments[s]["items"]))
    a, b, c = shipments[home]["items"]

    # Item a goes to delivered, b to shipped, c stays; the office item is canceled.
    await request_event(settings, reference, "Payment - receive", item_ids=[a, b, c])
    await wait_for_states(engine, reference, {"picking", "Payment - waiting"})
    await request_event(settings, reference, "ship", item_ids=[a, b])
    await request_event(settings, reference, "deliver", item_ids=[a])
    await request_event(settings, reference, "cancel", shipment_id=office)

    async def settled_states():
        states = await item_states(engine, reference)
        wanted = {a: "delivered", b: "shipped", c: "picking", shipments[office]["items"][0]: "cancelled"}
        return states == wanted

    await wait_until(settled_states)
    await settle(2)  # shipping hears item.state_changed

    cases = [
        (await request_split(settings, "DE--NO-SUCH", [a], target_shipment_id=home), "unknown_order"),
        (await request_split(settings, reference, [c, 999_999_999], target_shipment_id=office), "item_not_in_order"),
        (await request_split(settings, reference, [b], target_shipment_id=office), "item_already_shipped"),
        (await request_split(settings, reference, [a], target_shipment_id=office), "item_already_delivered"),
        (
            await request_split(settings, reference, shipments[office]["items"], target_shipment_id=home),
            "item_canceled",
        ),
        (
            await request_split(settings, reference, [c], target_shipment_id=next(iter(other_shipments))),
            "target_not_in_order",
        ),
    ]
    for request, reason in cases:
        (rejection,) = await answers(settings, "shipment.split_rejected", request)
        assert rejection["reason"] == reason, rejection
        assert rejection["item_ids"] == request["item_ids"]
        assert "nothing was moved" in rejection["message"] or reason in ("unknown_order", "target_not_in_order")
    assert (await shipments_of(engine, reference)).keys() == shipments.keys()
    assert {s: v["items"] for s, v in (await shipments_of(engine, reference)).items()} == {
        s: v["items"] for s, v in shipments.items()
    }


async def test_a_shipment_follows_its_items(settings, services, engine):
    shipped = new_order(1, process_name="Prepayment01")
    canceled = new_order(1, process_name="Prepayment01")
    (ship_id,) = await placed(settings, engine, shipped, 1, state="Payment - waiting")
    (cancel_id,) = await placed(settings, engine, canceled, 1, state="Payment - waiting")

    async def status(reference, shipment_id, wanted):
        return (await shipments_of(engine, reference))[shipment_id]["status"] == wanted

    await request_event(settings, shipped["order_reference"], "Payment - receive")
    await wait_for_states(engine, shipped["order_reference"], {"picking"})
    await request_event(settings, shipped["order_reference"], "ship")
    await wait_until(lambda: status(shipped["order_reference"], ship_id, "shipped"))
    await request_event(settings, shipped["order_reference"], "deliver")
    await wait_until(lambda: status(shipped["order_reference"], ship_id, "delivered"))
    await request_event(settings, canceled["order_reference"], "cancel")
    await wait_until(lambda: status(canceled["order_reference"], cancel_id, "canceled"))

    async with TopicReader(settings, "shipment.updated") as reader:
        await reader.wait_for(lambda _: len(reader.events(shipped["order_reference"])) >= 2)
        assert [e["status"] for e in reader.events(shipped["order_reference"])] == ["shipped", "delivered"]
        assert [e["status"] for e in reader.events(canceled["order_reference"])] == ["canceled"]


@pytest.fixture
async def shipping_without_split_delivery(servers, services):
    """A second shipping service with split delivery off, on its own database and consumer groups."""
    admin = await asyncpg.connect(asyncpg_dsn(servers.settings.database_url).rsplit("/", 1)[0] + "/postgres")
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = 'oms_single_shipment'"):
            await admin.execute("CREATE DATABASE oms_single_shipment")
    finally:
        await admin.close()
    url = servers.settings.database_url.rsplit("/", 1)[0] + "/oms_single_shipment"
    await asyncio.to_thread(upgrade, Settings(shipping_database_url=url), "shipping")
    env = {
        **servers.env,
        "OMS_SHIPPING_DATABASE_URL": url,
        "OMS_SPLIT_DELIVERY_ENABLED": "false",
        "OMS_KAFKA_GROUP_PREFIX": servers.env["OMS_KAFKA_GROUP_PREFIX"] + "-single",
    }
    process = ServiceProcess("shipping", env, servers.logs_dir / "shipping-single.log")
    process.start()
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    yield engine
    process.stop()
    await engine.dispose()


async def test_split_delivery_switched_off_gives_one_shipment_and_rejects_splits(
    settings, services, engine, shipping_without_split_delivery
):
    order = new_order(3)  # two addresses
    reference = order["order_reference"]
    both = await placed(settings, engine, order, 2)  # the usual shipping service splits
    single = await wait_until(lambda: _all(shipping_without_split_delivery, reference, 1), timeout=60)
    (only,) = single.values()
    assert only["items"] == sorted(i for s in both.values() for i in s["items"])
    assert only["expense"] == 490  # one shipment, one expense

    request = await request_split(
        settings, reference, [only["items"][0]], new_shipment={"address": OFFICE, "method": EXPRESS}
    )
    rejections = await answers(settings, "shipment.split_rejected", request)
    assert [(r["reason"], r["message"]) for r in rejections] == [
        ("split_delivery_disabled", "split delivery is switched off: one shipment per order")
    ]
