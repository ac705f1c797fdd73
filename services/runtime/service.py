"""Builds a service's FastStream application: broker, consumer, outbox relay, background workers."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from faststream import FastStream
from faststream.kafka import KafkaBroker
from sqlalchemy import MetaData, Table
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.envelope import Event
from services.runtime.broker import create_broker
from services.runtime.consumer import EventConsumer, Route
from services.runtime.db import create_engine
from services.runtime.garbage import tune_garbage_collector
from services.runtime.relay import OutboxRelay
from services.runtime.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class ServiceContext:
    service: str
    settings: Settings
    engine: AsyncEngine
    broker: KafkaBroker
    consumer: EventConsumer
    relay: OutboxRelay
    outbox: Table
    extras: dict[str, Any] = field(default_factory=dict)


Worker = Callable[[ServiceContext, asyncio.Event], Awaitable[None]]


@dataclass
class ServiceDefinition:
    name: str
    metadata: MetaData
    subscribe: Callable[[ServiceContext], None]
    workers: list[Worker] = field(default_factory=list)
    # The contracts this service publishes (through its outbox), for the AsyncAPI document.
    publishes: tuple[type[Event], ...] = ()

    @property
    def outbox(self) -> Table:
        return self.metadata.tables[f"{self.name}.outbox"]

    @property
    def inbox(self) -> Table:
        return self.metadata.tables[f"{self.name}.inbox"]


def build_context(definition: ServiceDefinition, settings: Settings) -> ServiceContext:
    """Everything a service runs with, subscribed but not started (nothing is connected yet)."""
    engine = create_engine(settings, definition.name)
    broker = create_broker(settings, definition.name)
    consumer = EventConsumer(settings, definition.name, engine, definition.outbox, definition.inbox)
    relay = OutboxRelay(settings, engine, definition.outbox, definition.name)
    context = ServiceContext(definition.name, settings, engine, broker, consumer, relay, definition.outbox)
    definition.subscribe(context)
    consumer.attach(broker)
    return context


def definition_of(service: str) -> ServiceDefinition:
    """The definition of one of the services (`services.<name>.app.DEFINITION`), imported when asked for."""
    return importlib.import_module(f"services.{service}.app").DEFINITION


async def subscriptions(definition: ServiceDefinition, settings: Settings) -> dict[str, Route]:
    """The topics a service consumes and how, as its `subscribe` registers them, without running it: nothing is
    connected, and what was built to find out is let go."""
    context = build_context(definition, settings)
    await context.relay.discard()
    await context.engine.dispose()
    return context.consumer.routes


def create_app(definition: ServiceDefinition, settings: Settings) -> FastStream:
    context = build_context(definition, settings)
    engine, broker, relay = context.engine, context.broker, context.relay

    ready = asyncio.Event()

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        tune_garbage_collector()
        stop = asyncio.Event()
        tasks = [asyncio.create_task(relay.run(stop), name=f"{definition.name}-relay")]
        tasks += [
            asyncio.create_task(worker(context, stop), name=f"{definition.name}-{worker.__name__}")
            for worker in definition.workers
        ]
        if settings.startup_timeout_seconds > 0:
            tasks.append(
                asyncio.create_task(
                    startup_watchdog(definition.name, ready, stop, settings.startup_timeout_seconds),
                    name=f"{definition.name}-startup-watchdog",
                )
            )
        log.info("%s started", definition.name)
        try:
            yield
        finally:
            # The broker has stopped consuming by now; let the relay publish what is left, then stop.
            with contextlib.suppress(Exception):
                await relay.relay_once()
            stop.set()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for task, result in zip(tasks, results, strict=True):
                if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                    log.error("%s stopped with an error: %r", task.get_name(), result)
            await engine.dispose()
            log.info("%s stopped", definition.name)

    app = FastStream(broker, lifespan=lifespan)

    @app.after_startup
    async def joined() -> None:  # every subscriber started: its consumer group joined, partitions assigned
        ready.set()
        log.info("%s ready: consuming %d topics", definition.name, len(context.consumer.topics))

    return app


STARTUP_TIMEOUT_EXIT = 75  # EX_TEMPFAIL: try again


async def startup_watchdog(
    service: str,
    ready: asyncio.Event,
    stop: asyncio.Event,
    timeout: float,
    exit_process: Callable[[int], object] | None = None,
) -> None:
    """Ends the process when the service has not joined its consumer groups within `timeout` seconds (nor been
    stopped meanwhile). A join that never finishes leaves the service running and consuming nothing, without a
    word; exiting says so, and lets `oms up` (or any supervisor) start it again. Nothing is lost: no offset was
    committed, and what the relay had not published stays in the outbox."""
    waiters = [asyncio.ensure_future(ready.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    if ready.is_set() or stop.is_set():
        return
    log.error(
        "%s has not joined all its consumer groups %g s after starting (OMS_STARTUP_TIMEOUT_SECONDS); the "
        "broker may never finish the join (the embedded one sometimes does not). Exiting with status %d so "
        "that it is started again.",
        service,
        timeout,
        STARTUP_TIMEOUT_EXIT,
    )
    (exit_process or _exit_now)(STARTUP_TIMEOUT_EXIT)


def _exit_now(status: int) -> None:
    """Exit at once: a clean shutdown would wait on the very join that hangs."""
    logging.shutdown()  # the reason reaches the log first
    os._exit(status)
