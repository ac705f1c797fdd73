"""Inbox and outbox tables, one pair in each service's schema."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID


def inbox_table(metadata: MetaData) -> Table:
    """One row per event a consumer has processed: (consumer, event_id) is the dedupe key."""
    return Table(
        "inbox",
        metadata,
        Column("consumer", Text, primary_key=True),
        Column("event_id", UUID(as_uuid=True), primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def outbox_table(metadata: MetaData) -> Table:
    """Events written in the same transaction as the state change; the relay moves them to Kafka."""
    return Table(
        "outbox",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("topic", Text, nullable=False),
        Column("key", LargeBinary, nullable=True),
        Column("value", LargeBinary, nullable=True),
        # An event's headers (type, id, content type) are made by the relay from topic and event_id; a dead
        # letter keeps its own (the original ones and the reason) here.
        Column("headers", JSONB, nullable=False, server_default="[]"),
        Column("event_id", UUID(as_uuid=True), nullable=True),
        # "lz4" when `value` is kept compressed (see services.runtime.outbox_codec); the relay publishes it as
        # it was written.
        Column("value_codec", Text, nullable=True),
        # How many events the row holds: 1, or a block of a transaction's events ("events+lz4"); the relay takes
        # rows by it, so one take stays within its batch size in events.
        Column("event_count", Integer, nullable=False, server_default="1"),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        # Rows live for milliseconds: kept inline and uncompressed up to 8 kB (value's storage is EXTERNAL,
        # set by each service's migration, as SQLAlchemy cannot declare it).
        postgresql_with={"toast_tuple_target": 8160},
    )


def add_value_codec(schema: str) -> None:
    """Migration step: outbox values may be kept compressed (`value_codec`)."""
    from alembic import op

    op.add_column("outbox", Column("value_codec", Text, nullable=True), schema=schema)


def drop_value_codec(schema: str) -> None:
    """Migration step back: rows still waiting for the relay get their values uncompressed first."""
    from alembic import op
    from sqlalchemy import text

    from services.runtime.outbox_codec import unpack

    bind = op.get_bind()
    packed = bind.execute(text(f"SELECT id, value, value_codec FROM {schema}.outbox WHERE value_codec IS NOT NULL"))
    for row_id, value, codec in packed.all():
        bind.execute(
            text(f"UPDATE {schema}.outbox SET value = :value WHERE id = :id"),
            {"value": unpack(value, codec), "id": row_id},
        )
    op.drop_column("outbox", "value_codec", schema=schema)


def add_event_count(schema: str) -> None:
    """Migration step: an outbox row may hold a block of events (`event_count` of them)."""
    from alembic import op

    op.add_column("outbox", Column("event_count", Integer, nullable=False, server_default="1"), schema=schema)


def drop_event_count(schema: str) -> None:
    """Migration step back: rows still waiting for the relay are rewritten one event per row, in the order the
    relay would have published them, before the column goes."""
    from alembic import op
    from sqlalchemy import text

    from services.runtime.outbox_codec import EVENTS_LZ4, pack, unpack_events

    bind = op.get_bind()
    if bind.execute(text(f"SELECT EXISTS (SELECT 1 FROM {schema}.outbox WHERE value_codec = '{EVENTS_LZ4}')")).scalar():
        waiting = bind.execute(
            text(
                f"""DELETE FROM {schema}.outbox RETURNING id, topic, key, value, headers::text AS headers, event_id,
                        value_codec, created_at"""
            )
        ).all()
        insert = text(
            f"""INSERT INTO {schema}.outbox (topic, key, value, headers, event_id, value_codec, created_at)
                VALUES (:topic, :key, :value, CAST(:headers AS jsonb), :event_id, :value_codec, :created_at)"""
        )
        for row in sorted(waiting, key=lambda row: row.id):
            if row.value_codec != EVENTS_LZ4:
                bind.execute(insert, row._asdict())
                continue
            for event in unpack_events(row.value):
                value, codec = pack(event.value)
                bind.execute(
                    insert,
                    {
                        "topic": event.topic,
                        "key": event.key,
                        "value": value,
                        "headers": "[]",
                        "event_id": event.event_id.decode(),
                        "value_codec": codec,
                        "created_at": row.created_at,
                    },
                )
    op.drop_column("outbox", "event_count", schema=schema)
