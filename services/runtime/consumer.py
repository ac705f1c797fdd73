"""Consuming with effectively-once effects.

A batch of records is decoded; undecodable or schema-invalid ones are dead-lettered; the rest are
claimed in the inbox (consumer + event id) and handed to the handler, all in ONE transaction. The
offset is committed only after that transaction. A failing batch falls back to one record at a
time, so one bad message never stalls the others: transient failures (database or network) are
retried with backoff without advancing the offset, other failures are dead-lettered after
`consumer_max_attempts`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiokafka.structs import ConsumerRecord
from asyncpg.exceptions import UniqueViolationError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.envelope import Event, describe_validation_error
from services.runtime.db import driver_connection
from services.runtime.errors import is_transient
from services.runtime.garbage import collect_between_batches
from services.runtime.settings import Settings
from services.runtime.unit_of_work import UnitOfWork
from services.runtime.wire import document_decoder

log = logging.getLogger(__name__)


class _SeenBefore(Exception):
    """An event of the batch is in the inbox already (see EventConsumer._claim_new)."""


E = TypeVar("E")  # an Event, or a Document of one


@dataclass(frozen=True)
class Incoming(Generic[E]):
    event: E
    record: ConsumerRecord


Handler = Callable[[UnitOfWork, Sequence[Incoming[E]]], Awaitable[None]]


def decode(record: ConsumerRecord, model: type[Event], *, as_document: bool = False) -> Any:
    """The event (a model object, or with `as_document` the structs of services.runtime.wire, checked by the same
    contract), or the reason it cannot be one (a str)."""
    if record.value is None or record.value == b"":
        return "empty message: no JSON document"
    try:
        if as_document:
            return document_decoder(model).decode_json(record.value)
        return model.model_validate_json(record.value)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            return f"not valid JSON: {exc.errors()[0]['msg']}"
        return f"does not match the {model.TOPIC} contract: {describe_validation_error(exc)}"


def event_id_of(event: Any) -> uuid.UUID:
    return event["event_id"] if isinstance(event, dict) else event.event_id


@dataclass(frozen=True)
class Route:
    """Where one topic's records go: decoded as `model` (or as documents of it) into `handler`."""

    model: type[Event]
    handler: Handler[Any]
    name: str
    as_documents: bool = False

    def decode(self, record: ConsumerRecord) -> Any:
        return decode(record, self.model, as_document=self.as_documents)


class EventConsumer:
    """Subscribes handlers of one service to topics with the delivery semantics above."""

    def __init__(self, settings: Settings, service: str, engine: AsyncEngine, outbox: Table, inbox: Table) -> None:
        self.settings = settings
        self.service = service
        self.engine = engine
        self.outbox = outbox
        self.inbox = inbox
        self._failures: dict[tuple[str, int, int], int] = {}
        self._compressed = settings.kafka_batch_compression is not None
        self.routes: dict[str, Route] = {}  # topic -> how its records are handled

    @property
    def topics(self) -> list[str]:
        return list(self.routes)

    def subscribe(
        self,
        topic: str,
        model: type[Event],
        handler: Handler[Any],
        *,
        name: str | None = None,
        as_documents: bool = False,
    ) -> None:
        """Consume `topic` in batches into `handler`, with events as `model` objects, or with `as_documents`
        as structs checked by the same contract (see services.runtime.wire; for the busiest topics).
        Only registers the route: `attach` makes one subscriber for all of them."""
        if as_documents:
            document_decoder(model)  # derived now: a contract the structs cannot check stops the service at start
        self.routes[topic] = Route(model, handler, name or f"{self.service}.{handler.__name__}", as_documents)

    def attach(self, broker: KafkaBroker) -> None:
        """One subscriber, in the service's one consumer group, for every topic routed (see `subscribe`).

        A group (and a consumer) per topic cost every replica heartbeats and fetches per topic whether the topic
        was busy or not: two idle order_state replicas with seven groups each took 12% of a core, and the
        embedded broker 10% more answering them, which a placement burst then paid too. A batch may now mix
        topics: each topic's records go to their handler in their own transaction, in the order they came
        within each partition; when one of them must be retried, the whole batch is read again and what was
        done already is dropped by the inbox."""
        if not self.routes:
            return
        settings = self.settings
        routes = self.routes

        async def on_batch(body: Any, message: KafkaMessage) -> None:
            records = message.raw_message
            if not isinstance(records, tuple):
                records = (records,)
            by_topic: dict[str, list[ConsumerRecord]] = {}
            for record in records:
                by_topic.setdefault(record.topic, []).append(record)
            done = True
            for topic, batch in by_topic.items():
                if not await self.process(batch, routes[topic]):
                    done = False
                    break
            if done:
                await message.ack()
            else:
                await message.nack()
            collect_between_batches()  # the batch's own objects are gone: see services.runtime.garbage

        on_batch.__name__ = f"on_{self.service}"
        broker.subscriber(
            *routes,
            group_id=settings.group_id(self.service),
            batch=True,
            max_records=settings.consumer_batch_size,
            max_partition_fetch_bytes=settings.consumer_max_partition_fetch_bytes,
            fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.MANUAL,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
            max_poll_interval_ms=settings.kafka_max_poll_interval_ms,
            decoder=_raw_decoder,
            title=f"{self.service}:consumer",
            description=f"{self.service} consumes " + ", ".join(routes),
        )(on_batch)

    async def process(self, records: list[ConsumerRecord], route: Route) -> bool:
        """Handle a batch. True when every record is settled (stored or dead-lettered)."""
        key = (records[0].topic, records[0].partition, records[0].offset)
        try:
            await self._transaction(records, route)
        except Exception as exc:
            if is_transient(exc):
                return await self._back_off(key, exc)
            if len(records) == 1:
                return await self._one_with_attempts(records[0], route, first_error=exc)
            log.warning("%s: batch of %d failed (%s); handling one at a time", route.name, len(records), exc)
            for record in records:
                try:
                    settled = await self._one_with_attempts(record, route)
                except Exception as single_exc:  # transient while going one by one
                    return await self._back_off(key, single_exc)
                if not settled:
                    return False
        self._failures.pop(key, None)
        return True

    async def _one_with_attempts(
        self,
        record: ConsumerRecord,
        route: Route,
        first_error: Exception | None = None,
    ) -> bool:
        attempts = 1 if first_error is not None else 0
        error = first_error
        while attempts < self.settings.consumer_max_attempts:
            try:
                await self._transaction([record], route)
                return True
            except Exception as exc:
                if is_transient(exc):
                    raise
                attempts += 1
                error = exc
        assert error is not None
        reason = f"handler failed after {attempts} attempts: {type(error).__name__}: {error}"
        log.error("%s: dead-lettering %s/%d@%d: %s", route.name, record.topic, record.partition, record.offset, reason)
        async with self.engine.begin() as conn:
            uow = UnitOfWork(conn, self.outbox, self.service, compressed_batches=self._compressed)
            uow.dead_letter(record, reason, attempts)
            decoded = route.decode(record)
            if not isinstance(decoded, str):
                await self._claim(conn, route.name, [event_id_of(decoded)])
            await uow.flush()
        return True

    async def _transaction(self, records: list[ConsumerRecord], route: Route) -> None:
        valid: list[Incoming[Any]] = []
        invalid: list[tuple[ConsumerRecord, str]] = []  # with why each is dead-lettered
        for record in records:
            decoded = route.decode(record)
            if isinstance(decoded, str):
                log.warning(
                    "%s: dead-lettering %s/%d@%d: %s",
                    route.name,
                    record.topic,
                    record.partition,
                    record.offset,
                    decoded,
                )
                invalid.append((record, decoded))
            else:
                valid.append(Incoming(decoded, record))
        try:
            await self._apply(valid, invalid, route, seen_before_possible=False)
        except _SeenBefore:
            # An event of the batch was handled already (a redelivery, a replay, the same event twice in the
            # batch): nothing was done yet, the claim being the transaction's first statement.
            await self._apply(valid, invalid, route, seen_before_possible=True)

    async def _apply(
        self,
        valid: list[Incoming[Any]],
        invalid: list[tuple[ConsumerRecord, str]],
        route: Route,
        *,
        seen_before_possible: bool,
    ) -> None:
        async with self.engine.begin() as conn:
            uow = UnitOfWork(conn, self.outbox, self.service, compressed_batches=self._compressed)
            for record, reason in invalid:
                uow.dead_letter(record, reason)
            if valid:
                ids = [event_id_of(item.event) for item in valid]
                if seen_before_possible:
                    claimed = await self._claim(conn, route.name, ids)
                else:
                    await self._claim_new(conn, route.name, ids)
                    claimed = None
                if claimed is None:  # every id new, each once
                    fresh: list[Incoming[Any]] = valid
                else:
                    fresh = []
                    for item, event_id in zip(valid, ids, strict=True):
                        if event_id in claimed:
                            claimed.discard(event_id)
                            fresh.append(item)
                if fresh:
                    await route.handler(uow, fresh)
            await uow.flush()

    @property
    def _inbox_name(self) -> str:
        return f"{self.inbox.schema}.{self.inbox.name}"

    async def _claim_new(self, conn: Any, consumer_name: str, event_ids: list[uuid.UUID]) -> None:
        """Inbox rows for ids that are nearly always new, without asking which ones were not: a plain INSERT
        costs PostgreSQL less than half of `_claim` (3.5 vs 8.5 us of CPU per id, 1,000 ids a statement).
        Raises _SeenBefore, the transaction then aborted, when one of them was seen before or comes twice."""
        try:
            await (await driver_connection(conn)).execute(
                f"INSERT INTO {self._inbox_name} (consumer, event_id) SELECT $1, unnest($2::uuid[])",
                consumer_name,
                event_ids,
            )
        except UniqueViolationError as exc:
            raise _SeenBefore from exc

    async def _claim(self, conn: Any, consumer_name: str, event_ids: list[uuid.UUID]) -> set[uuid.UUID] | None:
        """Insert inbox rows; returns the ids not seen before, or None when that is all of them, each once (the
        usual case: the database says so, and no id is looked at again in Python)."""
        seen_before = await (await driver_connection(conn)).fetchval(
            f"""WITH claimed AS (
                    INSERT INTO {self._inbox_name} (consumer, event_id) SELECT $1, unnest($2::uuid[])
                    ON CONFLICT DO NOTHING RETURNING event_id)
                SELECT CASE WHEN (SELECT count(*) FROM claimed) = cardinality($2::uuid[]) THEN NULL ELSE
                    array(SELECT e FROM unnest($2::uuid[]) AS e WHERE e NOT IN (SELECT event_id FROM claimed)) END""",
            consumer_name,
            event_ids,
        )
        if seen_before is None:
            return None
        return set(event_ids).difference(seen_before)

    async def _back_off(self, key: tuple[str, int, int], exc: BaseException) -> bool:
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay = min(0.2 * 2 ** (failures - 1), self.settings.retry_backoff_max_seconds)
        log.warning(
            "%s: transient failure at %s/%d@%d (attempt %d), retrying in %.1fs: %s",
            self.service,
            *key,
            failures,
            delay,
            exc,
        )
        await asyncio.sleep(delay)
        return False


def _raw_decoder(message: Any) -> Any:
    return None
