"""Migrations both ways on a database of their own (the running services keep theirs)."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import pytest
from alembic import command

from services.runtime.db import asyncpg_dsn
from services.runtime.migrations import alembic_config, upgrade_all
from services.runtime.settings import Settings

BEFORE_COMPRESSED_OUTBOX = {"order_state": "0006", "invoicing": "0007", "shipping": "0004"}
# The columns of an order_state table's primary key, in order ($1: the table's name).
PRIMARY_KEY = """SELECT array_agg(a.attname ORDER BY k.n) FROM pg_index i
                 CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                 WHERE i.indrelid = ('order_state.' || $1)::regclass AND i.indisprimary"""


@pytest.fixture
async def own_database(settings: Settings) -> Settings:
    name = f"migrations_{uuid.uuid4().hex[:8]}"
    server = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    try:
        await server.execute(f"CREATE DATABASE {name}")
    finally:
        await server.close()
    url = settings.database_url.rsplit("/", 1)[0] + f"/{name}"
    return settings.model_copy(update={"database_url": url})


@pytest.mark.parametrize("service", sorted(BEFORE_COMPRESSED_OUTBOX))
async def test_going_back_before_compressed_outbox_values_keeps_waiting_events_readable(own_database, service):
    await upgrade_all(own_database)
    event = b'{"lines": [' + b", ".join(b'{"sku": "SKU-%d", "name": "Organic T-shirt"}' % n for n in range(80)) + b"]}"
    conn = await asyncpg.connect(asyncpg_dsn(own_database.database_url_for(service)))
    try:
        from services.runtime.outbox_codec import pack

        packed, codec = pack(event)
        assert codec == "lz4" and len(packed) < len(event)
        await conn.execute(
            f"INSERT INTO {service}.outbox (topic, key, value, value_codec) VALUES ('t', 'k', $1, $2)", packed, codec
        )
        config = alembic_config(service, own_database.database_url_for(service))
        await asyncio.to_thread(command.downgrade, config, BEFORE_COMPRESSED_OUTBOX[service])
        assert await conn.fetchval(f"SELECT value FROM {service}.outbox") == event
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'outbox'",
            service,
        )
        assert "value_codec" not in {row["column_name"] for row in columns}

        await asyncio.to_thread(command.upgrade, config, "head")
        assert await conn.fetchval(f"SELECT value_codec FROM {service}.outbox") is None  # kept as is
    finally:
        await conn.close()


BEFORE_EVENT_BLOCKS = {"order_state": "0011", "invoicing": "0008", "shipping": "0005"}


@pytest.mark.parametrize("service", sorted(BEFORE_EVENT_BLOCKS))
async def test_going_back_before_event_blocks_gives_each_waiting_event_its_own_row_in_order(own_database, service):
    from services.runtime.outbox_codec import FramedEvent, pack_events, unpack

    await upgrade_all(own_database)
    conn = await asyncpg.connect(asyncpg_dsn(own_database.database_url_for(service)))
    try:
        big = b'{"lines": [' + b", ".join(b'{"sku": "SKU-%d"}' % n for n in range(200)) + b"]}"
        block = [
            FramedEvent(topic, b"R-1", str(uuid.uuid4()).encode(), value)
            for topic, value in (("order.created", big), ("item.state_changed", b'{"n": 2}'))
        ]
        await conn.execute(
            f"INSERT INTO {service}.outbox (topic, key, value, event_id) VALUES ('t', 'R-0', 'v0', $1)", uuid.uuid4()
        )
        await conn.execute(
            f"""INSERT INTO {service}.outbox (topic, value, value_codec, event_count)
                VALUES ('order.created', $1, 'events+lz4', 2)""",
            pack_events(block),
        )
        await conn.execute(
            f"""INSERT INTO {service}.outbox (topic, key, value, headers)
                VALUES ('dlq.x', 'R-3', 'v3', '[["dlq.reason", "r"]]')"""
        )
        config = alembic_config(service, own_database.database_url_for(service))
        await asyncio.to_thread(command.downgrade, config, BEFORE_EVENT_BLOCKS[service])
        waiting = await conn.fetch(
            f"""SELECT topic, key, value, value_codec, event_id::text AS event_id, headers::text AS headers
                FROM {service}.outbox ORDER BY id"""
        )
        assert [(row["topic"], row["key"], unpack(row["value"], row["value_codec"])) for row in waiting] == [
            ("t", b"R-0", b"v0"),
            ("order.created", b"R-1", big),
            ("item.state_changed", b"R-1", b'{"n": 2}'),
            ("dlq.x", b"R-3", b"v3"),
        ]
        assert waiting[1]["value_codec"] == "lz4"  # big values stay compressed
        assert [row["event_id"] for row in waiting[1:3]] == [event.event_id.decode() for event in block]
        assert waiting[3]["headers"] == '[["dlq.reason", "r"]]' and waiting[3]["event_id"] is None

        await asyncio.to_thread(command.upgrade, config, "head")
        assert {row["event_count"] for row in await conn.fetch(f"SELECT event_count FROM {service}.outbox")} == {1}
    finally:
        await conn.close()


@pytest.mark.parametrize("service", sorted(BEFORE_COMPRESSED_OUTBOX))
async def test_the_migrated_schema_is_the_one_the_code_describes(own_database, service):
    """Alembic finds nothing to add, drop or change between a service's migrations and its tables.py."""
    import importlib

    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy.ext.asyncio import create_async_engine

    await upgrade_all(own_database, (service,))
    metadata = importlib.import_module(f"services.{service}.tables").metadata
    engine = create_async_engine(own_database.database_url_for(service))
    try:
        async with engine.connect() as conn:
            differences = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(
                        sync,
                        opts={
                            "include_schemas": True,
                            "include_name": lambda name, kind, _parent: kind != "schema" or name == service,
                            "compare_type": True,
                        },
                    ),
                    metadata,
                )
            )
    finally:
        await engine.dispose()
    # Alembic's own version table is the one table tables.py does not describe.
    assert [d for d in differences if not (d[0] == "remove_table" and d[1].name == "alembic_version")] == []


async def test_order_rows_and_items_survive_migration_0009_both_ways(own_database):
    await upgrade_all(own_database, ("order_state",))
    conn = await asyncpg.connect(asyncpg_dsn(own_database.database_url_for("order_state")))
    config = alembic_config("order_state", own_database.database_url_for("order_state"))
    await asyncio.to_thread(command.downgrade, config, "0013")  # items are rows of a table up to 0013
    try:
        await conn.execute(
            """INSERT INTO order_state.sales_order (id, order_reference, store, locale, currency, price_mode,
                   customer, billing_address, payment_method, process_name, totals, lines, placed_at, placed_event_id)
               VALUES (7, 'DE--M-1', 'DE', 'de_DE', 'EUR', 'GROSS_MODE', '{"email": "a@b.de"}', '{"city": "Berlin"}',
                       'invoice', 'OmsDefault01', '{"grand_total": 100}', '[{"sku": "S", "item_id_ranges": [[1, 2]]}]',
                       now(), gen_random_uuid())"""
        )
        await conn.execute(
            """INSERT INTO order_state.sales_order_item (id, order_id, line_number, sku, quantity, state)
               VALUES (1, 7, 1, 'S', 1, 'new'), (2, 7, 1, 'S', 1, 'new')"""
        )
        types = """SELECT column_name, data_type FROM information_schema.columns
                   WHERE table_schema = 'order_state' AND table_name = 'sales_order'
                     AND column_name IN ('customer', 'billing_address', 'totals', 'lines') ORDER BY 1"""
        assert [tuple(row) for row in await conn.fetch(types)] == [
            ("billing_address", "json"),
            ("customer", "json"),
            ("lines", "text"),
            ("totals", "json"),
        ]
        assert await conn.fetchval(PRIMARY_KEY, "sales_order_item") == ["order_id", "id"]

        await asyncio.to_thread(command.downgrade, config, "0008")
        assert [tuple(row) for row in await conn.fetch(types)] == [
            ("billing_address", "jsonb"),
            ("customer", "jsonb"),
            ("lines", "json"),
            ("totals", "jsonb"),
        ]
        assert await conn.fetchval(PRIMARY_KEY, "sales_order_item") == ["id"]
        assert await conn.fetchval("SELECT lines->0->>'sku' FROM order_state.sales_order WHERE id = 7") == "S"

        await asyncio.to_thread(command.upgrade, config, "head")
        order = await conn.fetchrow(
            "SELECT customer->>'email' AS email, lines::json->0->'item_id_ranges' AS ranges, "
            "(totals->>'grand_total')::int AS total FROM order_state.sales_order WHERE id = 7"
        )
        assert (order["email"], order["ranges"], order["total"]) == ("a@b.de", "[[1, 2]]", 100)
        assert await conn.fetchval("SELECT count(*) FROM order_state.sales_order_item WHERE order_id = 7") == 2
        assert await conn.fetchval("SELECT count(*) FROM order_state.sales_order_item_group WHERE order_id = 7") == 1
    finally:
        await conn.close()


async def test_ids_reserved_in_blocks_stay_unique_across_migration_0011_both_ways(own_database):
    from services.order_state.state_store import reserve_ids
    from services.runtime.db import create_engine

    await upgrade_all(own_database, ("order_state",))
    engine = create_engine(own_database, "order_state")
    conn = await asyncpg.connect(asyncpg_dsn(own_database.database_url_for("order_state")))
    insert = """INSERT INTO order_state.sales_order_item (order_id, line_number, sku, quantity, state)
                VALUES (1, 1, 'S', 1, 'new') RETURNING id"""
    try:
        async with engine.begin() as first, engine.begin() as second:  # two replicas at once
            a = await reserve_ids(first, 3, 100, [])
            b = await reserve_ids(second, 3, 100, [])
        assert len(a.item_ids) == len(b.item_ids) == 100 and len(a.order_ids) == len(b.order_ids) == 3
        handed_out = set(a.item_ids) | set(b.item_ids)
        assert len(handed_out) == 200 and a.item_ids == sorted(a.item_ids)
        # The next value of the items' sequence: a block of its own (the items are groups since 0014)
        by_default = await conn.fetchval("SELECT nextval('order_state.sales_order_item_id_seq')")
        assert by_default not in handed_out

        config = alembic_config("order_state", own_database.database_url_for("order_state"))
        await asyncio.to_thread(command.downgrade, config, "0010")
        after_downgrade = [await conn.fetchval(insert) for _ in range(3)]
        assert after_downgrade == list(range(after_downgrade[0], after_downgrade[0] + 3))  # one at a time again
        assert min(after_downgrade) > max(handed_out | {by_default})

        await asyncio.to_thread(command.upgrade, config, "head")
        async with engine.begin() as third:
            c = await reserve_ids(third, 1, 5, [])
        assert min(c.item_ids) > max(after_downgrade)
        assert c.item_ids == list(range(c.item_ids[0], c.item_ids[0] + 5))
    finally:
        await conn.close()
        await engine.dispose()


async def test_history_log_and_timeouts_keyed_by_order_survive_migration_0013_both_ways(own_database):
    await upgrade_all(own_database, ("order_state",))
    conn = await asyncpg.connect(asyncpg_dsn(own_database.database_url_for("order_state")))
    indexes = "SELECT count(*) FROM pg_index WHERE indrelid = ('order_state.' || $1)::regclass"
    timeout = """INSERT INTO order_state.state_timeout (order_id, state, event, entered_at, due_at)
                 VALUES (7, 'payment pending', 'cancel', '2026-12-03T08:00:00Z', '2026-12-03T09:00:00Z')
                 ON CONFLICT DO NOTHING"""
    try:
        await conn.execute(
            """INSERT INTO order_state.sales_order_item_state_history (order_id, item_ids, item_count, to_state)
               VALUES (7, '{[1,3)}', 2, 'new')"""
        )
        await conn.execute(
            """INSERT INTO order_state.transition_log (order_id, command, source_state, target_state, item_ids,
                   item_count) VALUES (7, 'Oms/SendInvoice', 'new', 'invoiced', '{[1,3)}', 2)"""
        )
        await conn.execute(timeout)
        await conn.execute(timeout)  # the same entry twice: one timeout
        for table in ("sales_order_item_state_history", "transition_log"):
            assert await conn.fetchval(PRIMARY_KEY, table) == ["order_id", "id"]
            assert await conn.fetchval(indexes, table) == 1
        assert await conn.fetchval(PRIMARY_KEY, "state_timeout") == ["order_id", "state", "event", "entered_at"]
        assert await conn.fetchval(indexes, "state_timeout") == 2  # and the due time, for the scheduler

        config = alembic_config("order_state", own_database.database_url_for("order_state"))
        await asyncio.to_thread(command.downgrade, config, "0012")
        for table in ("sales_order_item_state_history", "transition_log"):
            assert await conn.fetchval(PRIMARY_KEY, table) == ["id"]
            assert await conn.fetchval(indexes, table) == 2
        assert await conn.fetchval(PRIMARY_KEY, "state_timeout") == ["id"]
        assert await conn.fetchval("SELECT count(id) FROM order_state.state_timeout") == 1
        await conn.execute(timeout)  # still refused by the entry's unique constraint
        assert await conn.fetchval("SELECT count(*) FROM order_state.state_timeout") == 1

        await asyncio.to_thread(command.upgrade, config, "head")
        assert await conn.fetchval(PRIMARY_KEY, "state_timeout") == ["order_id", "state", "event", "entered_at"]
        rows = await conn.fetch(
            """SELECT 'history' AS t, order_id FROM order_state.sales_order_item_state_history
               UNION ALL SELECT 'log', order_id FROM order_state.transition_log
               UNION ALL SELECT 'timeout', order_id FROM order_state.state_timeout ORDER BY 1"""
        )
        assert [tuple(row) for row in rows] == [("history", 7), ("log", 7), ("timeout", 7)]
    finally:
        await conn.close()


async def test_items_become_groups_and_rows_again_across_migration_0014(own_database):
    await upgrade_all(own_database, ("order_state",))
    conn = await asyncpg.connect(asyncpg_dsn(own_database.database_url_for("order_state")))
    config = alembic_config("order_state", own_database.database_url_for("order_state"))
    await asyncio.to_thread(command.downgrade, config, "0013")
    lines = (
        '[{"line_number": 1, "sku": "A", "item_quantity": 1, "item_id_ranges": [[1, 4]]},'
        ' {"line_number": 2, "sku": "B", "item_quantity": 5, "item_id_ranges": [[5, 5], [8, 9]]}]'
    )
    items = """SELECT id, order_id, line_number, sku, quantity, state, state_changed_at, shipment_id
               FROM order_state.sales_order_item ORDER BY id"""
    try:
        await conn.execute(
            """INSERT INTO order_state.sales_order (id, order_reference, store, locale, currency, price_mode,
                   customer, billing_address, payment_method, process_name, totals, lines, placed_at, placed_event_id)
               VALUES (7, 'DE--M-1', 'DE', 'de_DE', 'EUR', 'GROSS_MODE', '{}', '{}', 'invoice', 'OmsDefault01',
                       '{"grand_total": 100}', $1, now(), gen_random_uuid())""",
            lines,
        )
        await conn.execute(
            """INSERT INTO order_state.sales_order_item
                   (id, order_id, line_number, sku, quantity, state, state_changed_at, shipment_id)
               VALUES (1, 7, 1, 'A', 1, 'paid', '2026-12-01T10:00:00Z', 11),
                      (2, 7, 1, 'A', 1, 'paid', '2026-12-01T10:00:00Z', 11),
                      (3, 7, 1, 'A', 1, 'paid', '2026-12-01T10:00:00Z', 12),
                      (4, 7, 1, 'A', 1, 'new', '2026-12-01T09:00:00Z', NULL),
                      (5, 7, 2, 'B', 5, 'paid', '2026-12-01T10:00:00Z', 11),
                      (8, 7, 2, 'B', 5, 'paid', '2026-12-01T10:00:00Z', 11),
                      (9, 7, 2, 'B', 5, 'new', '2026-12-01T09:00:00Z', NULL)"""
        )
        await conn.execute(
            """INSERT INTO order_state.state_timeout (order_id, state, event, entered_at, due_at)
               VALUES (7, 'paid', 'ship', '2026-12-01T10:00:00Z', '2026-12-02T10:00:00Z')"""
        )
        waiting = "SELECT array_agg(item_id ORDER BY item_id) FROM order_state.item_timeout"
        assert await conn.fetchval(waiting) == [1, 2, 3, 5, 8]
        before = [tuple(row) for row in await conn.fetch(items)]
        next_id = await conn.fetchval("SELECT nextval('order_state.sales_order_item_id_seq')")  # handed out

        await asyncio.to_thread(command.upgrade, config, "head")
        assert [tuple(row) for row in await conn.fetch(items)] == before  # the view reads what the table held
        groups = await conn.fetch(
            """SELECT item_ids::text, state, shipment_id FROM order_state.sales_order_item_group
               ORDER BY lower(item_ids)"""
        )
        assert [tuple(row) for row in groups] == [
            ("{[1,3),[5,6),[8,9)}", "paid", 11),  # alike items, across lines, are one group
            ("{[3,4)}", "paid", 12),
            ("{[4,5),[9,10)}", "new", None),
        ]
        assert await conn.fetchval("SELECT nextval('order_state.sales_order_item_id_seq')") > next_id
        assert await conn.fetchval(waiting) == [1, 2, 3, 5, 8]  # the items a timeout stands for, from the groups

        await asyncio.to_thread(command.downgrade, config, "0013")
        assert [tuple(row) for row in await conn.fetch(items)] == before
        assert await conn.fetchval(PRIMARY_KEY, "sales_order_item") == ["order_id", "id"]
        assert await conn.fetchval(waiting) == [1, 2, 3, 5, 8]
        added = await conn.fetchval(
            "INSERT INTO order_state.sales_order_item (order_id, line_number, sku, quantity, state) "
            "VALUES (7, 1, 'A', 1, 'new') RETURNING id"
        )
        assert added > next_id  # the identity goes on after the ids handed out
    finally:
        await conn.close()


async def test_order_rows_keep_each_shipment_once_across_migration_0015(own_database):
    await upgrade_all(own_database, ("order_state",))
    conn = await asyncpg.connect(asyncpg_dsn(own_database.database_url_for("order_state")))
    config = alembic_config("order_state", own_database.database_url_for("order_state"))
    await asyncio.to_thread(command.downgrade, config, "0014")
    berlin = '{"address": {"city": "Berlin", "zip_code": "10115"}, "method": {"key": "dhl_standard", "price": 490}}'
    hamburg = '{"address": {"city": "Hamburg", "zip_code": "20095"}, "method": {"key": "dhl_standard", "price": 490}}'
    lines = (  # as placement wrote them up to 0014: each line with its whole shipment
        f'[{{"line_number":1,"sku":"A","item_quantity":1,"item_id_ranges":[[1,2]],"shipment":{berlin}}},'
        f'{{"line_number":2,"sku":"B","item_quantity":5,"item_id_ranges":[[3,3]],"shipment":{hamburg}}},'
        f'{{"line_number":3,"sku":"C","item_quantity":1,"item_id_ranges":[[4,4]],"shipment":{berlin}}},'
        f'{{"line_number":4,"sku":"D","item_quantity":1,"item_id_ranges":[[5,5]],"shipment":null}}]'
    )
    insert = """INSERT INTO order_state.sales_order (id, order_reference, store, locale, currency, price_mode,
                    customer, billing_address, payment_method, process_name, totals, lines, placed_at, placed_event_id)
                VALUES ($1, $2, 'DE', 'de_DE', 'EUR', 'GROSS_MODE', '{}', '{}', 'invoice', 'OmsDefault01',
                        '{"grand_total": 100}', $3, now(), gen_random_uuid())"""
    items = "SELECT id, line_number, sku, quantity FROM order_state.sales_order_item WHERE order_id = 7 ORDER BY id"
    try:
        await conn.execute(insert, 7, "DE--M-1", lines)
        await conn.execute(insert, 8, "DE--M-2", "[]")
        await conn.execute(
            """INSERT INTO order_state.sales_order_item_group (order_id, item_ids, state)
               VALUES (7, '{[1,6)}', 'new')"""
        )
        before = [tuple(row) for row in await conn.fetch(items)]
        assert len(before) == 5

        await asyncio.to_thread(command.upgrade, config, "head")
        kept = await conn.fetchrow("SELECT lines, shipments FROM order_state.sales_order WHERE id = 7")
        shipments = json.loads(kept["shipments"])
        assert shipments == [json.loads(berlin), json.loads(hamburg), None]
        assert kept["shipments"] == f"[{berlin},{hamburg},null]"  # each shipment's JSON as it was written
        assert [line["shipment"] for line in json.loads(kept["lines"])] == [0, 1, 0, 2]
        assert [line["sku"] for line in json.loads(kept["lines"])] == ["A", "B", "C", "D"]
        assert await conn.fetchval("SELECT shipments FROM order_state.sales_order WHERE id = 8") == "[]"
        assert [tuple(row) for row in await conn.fetch(items)] == before  # the item view reads the lines as before

        await asyncio.to_thread(command.downgrade, config, "0014")
        assert json.loads(await conn.fetchval("SELECT lines FROM order_state.sales_order WHERE id = 7")) == json.loads(
            lines
        )
        assert [tuple(row) for row in await conn.fetch(items)] == before
    finally:
        await conn.close()
