"""Pure parts of the runtime: settings, error classification, decoding with reasons."""

from __future__ import annotations

import asyncpg
import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import exc as sa_exc

from schemas import OrderPlaced
from services.runtime.consumer import decode
from services.runtime.errors import PermanentError, is_transient
from services.runtime.settings import Settings
from services.samples import sample_order


def record(value: bytes | None) -> ConsumerRecord:
    return ConsumerRecord("order.placed", 0, 7, 0, 0, b"k", value, None, 0, 0, [])


def test_decode_gives_the_event_or_the_reason():
    order = sample_order(1, run="R1")
    assert decode(record(order.model_dump_json().encode()), OrderPlaced) == order
    assert decode(record(None), OrderPlaced) == "empty message: no JSON document"
    assert decode(record(b"{nope"), OrderPlaced).startswith("not valid JSON")
    reason = decode(record(b'{"event_type": "order.placed"}'), OrderPlaced)
    assert reason.startswith("does not match the order.placed contract")
    assert "order_reference: Field required" in reason


def test_transient_failures_are_told_apart():
    assert is_transient(ConnectionRefusedError())
    assert is_transient(TimeoutError())
    assert is_transient(asyncpg.exceptions.SerializationError("conflict"))
    wrapped = sa_exc.OperationalError("SELECT 1", {}, ConnectionResetError())
    assert is_transient(wrapped)
    assert not is_transient(ValueError("bad data"))
    assert not is_transient(PermanentError("never"))
    assert not is_transient(sa_exc.IntegrityError("INSERT", {}, Exception("duplicate key")))


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OMS_INVOICE_BCC", "audit@shop.example, books@shop.example")
    monkeypatch.setenv("OMS_SHIPPING_DATABASE_URL", "postgresql+asyncpg://x@db2/ship")
    settings = Settings()
    assert settings.invoice_bcc == ["audit@shop.example", "books@shop.example"]
    assert settings.database_url_for("shipping") == "postgresql+asyncpg://x@db2/ship"
    assert settings.database_url_for("invoicing") == settings.database_url
    with pytest.raises(ValueError, match="unknown service"):
        settings.database_url_for("billing")


def test_sasl_settings_reach_the_kafka_clients(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OMS_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("OMS_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("OMS_KAFKA_SASL_USERNAME", "oms")
    monkeypatch.setenv("OMS_KAFKA_SASL_PASSWORD", "secret")
    options = Settings().kafka_client_options()
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_password"] == "secret"


def test_a_dead_letter_too_big_to_publish_goes_without_its_body_and_says_so():
    import json

    from services.order_state.tables import outbox
    from services.runtime.unit_of_work import UnitOfWork

    huge = b"x" * 16_500_000
    record = ConsumerRecord("order.placed", 2, 77, 0, 0, b"DE--1", huge, None, 0, len(huge), [("h", b"v")])
    uow = UnitOfWork(None, outbox, "order_state", compressed_batches=True)  # type: ignore[arg-type]
    uow.dead_letter(record, "does not match the order.placed contract")
    (row,) = uow._pending
    headers = dict(json.loads(row.headers))
    assert row.value is None and row.key == b"DE--1"
    assert headers["dlq.value_dropped"] == (
        "the original message is 16,500,000 bytes, over the 16,000,000 bytes a message may have before compression"
    )
    assert (headers["h"], headers["dlq.source_partition"], headers["dlq.source_offset"]) == ("v", "2", "77")

    small = ConsumerRecord("order.placed", 0, 1, 0, 0, b"k", b"{}", None, 0, 2, [])
    uow.dead_letter(small, "not valid JSON")
    assert uow._pending[1].value == b"{}"  # untouched


def test_events_are_partitioned_by_key_as_the_kafka_clients_do():
    import random

    from aiokafka.partitioner import DefaultPartitioner
    from aiokafka.partitioner import murmur2 as reference_murmur2

    from services.runtime.relay import murmur2, partition_for

    draw = random.Random(7)
    keys = [f"DE--{n:06d}".encode() for n in range(2000)] + [draw.randbytes(draw.randrange(0, 64)) for _ in range(3000)]
    assert [murmur2(key) for key in keys] == [reference_murmur2(key) for key in keys]
    default = DefaultPartitioner()
    for count in (1, 3, 6, 7):
        partitions = list(range(count))
        assert [partition_for(key, partitions) for key in keys] == [
            default(key, partitions, partitions) for key in keys
        ]
