"""What the `oms` sub-commands share: clear errors, publishing a request, reading a service's database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.envelope import Event
from services.runtime.db import create_engine
from services.runtime.settings import Settings

T = TypeVar("T")


class CliError(Exception):
    """A problem the user can fix; `oms` prints it without a traceback and exits non-zero."""


async def publish_event(settings: Settings, event: Event) -> None:
    """Publish one event as checkout or the back office would: keyed by order reference, headers set."""
    await publish_events(settings, [event])


async def publish_events(settings: Settings, events: list[Event]) -> None:
    from services.runtime.relay import create_producer
    from services.runtime.unit_of_work import event_headers

    producer = create_producer(settings, "oms-cli")
    try:
        await asyncio.wait_for(producer.start(), timeout=15)
    except Exception as exc:
        await producer.stop()
        raise CliError(f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc}") from exc
    try:
        for event in events:
            await producer.send_and_wait(
                event.event_type,
                event.model_dump_json().encode(),
                key=event.order_reference.encode(),
                headers=[(name, value.encode()) for name, value in event_headers(event)],
            )
    finally:
        await producer.stop()


async def with_connection(settings: Settings, service: str, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    engine = create_engine(settings, service)
    try:
        async with engine.connect() as conn:
            return await work(conn)
    except OSError as exc:
        raise CliError(f"cannot reach the {service} database: {exc}") from exc
    finally:
        await engine.dispose()


def settings_or_error() -> Settings:
    try:
        return Settings()
    except Exception as exc:
        raise CliError(f"invalid settings: {exc}") from exc
