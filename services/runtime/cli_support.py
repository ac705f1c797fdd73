"""What the `oms` sub-commands share: clear errors, publishing a request, reading a service's database."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.envelope import Event, describe_validation_error
from services.runtime.db import create_engine
from services.runtime.settings import Settings

T = TypeVar("T")


class CliError(Exception):
    """A problem the user can fix; `oms` prints it without a traceback and exits non-zero (2 unless told)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# Exit codes of a request answered or not (2 stays for errors in what was asked).
REFUSED = 1
NO_ANSWER = 3

# The options of every command that asks a service and prints its answer (see `ask`).
WaitOption = Annotated[
    bool,
    typer.Option(
        "--wait/--no-wait",
        help="Wait for the service's answer and print it: exit 1 when refused, 3 when no answer came in time.",
    ),
]
TimeoutOption = Annotated[float, typer.Option("--timeout", help="Seconds to wait for the answer.", min=0.1)]


async def _start(client: Any, settings: Settings) -> None:
    """Start a Kafka producer or consumer, or say which Kafka could not be reached."""
    if not logging.getLogger().handlers:
        # A one-shot command without logging set up: the error below says it all, without aiokafka's own
        # lines about each failed connection in front of it.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        await asyncio.wait_for(client.start(), timeout=15)
    except Exception as exc:
        await client.stop()
        raise CliError(f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc}") from exc


async def publish_event(settings: Settings, event: Event) -> None:
    """Publish one event as checkout or the back office would: keyed by order reference, headers set."""
    await publish_events(settings, [event])


async def publish_events(settings: Settings, events: list[Event]) -> None:
    from services.runtime.relay import create_producer
    from services.runtime.unit_of_work import event_headers

    producer = create_producer(settings, "oms-cli")
    await _start(producer, settings)
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


async def publish_and_wait(
    settings: Settings, request: Event, answers: Sequence[type[Event]], timeout: float, *, settle: float = 0
) -> list[Event]:
    """Publish `request`, then wait up to `timeout` seconds for its answer: the events on the `answers` topics
    caused by it (their `causation_id` is the request's id). The first one ends the wait, unless `settle`: then
    the answers that come within that many seconds after it, or until every answer topic has answered, go with
    it (a request answered partly, some items moved and some refused, gets two events, written together).
    Empty when nothing came in time.

    Answers are keyed by the order reference like the request, so only the one partition of each answer topic
    that key goes to is read, from its end as it was before the request left: nothing older is read, and
    nothing is committed (no consumer group). The embedded broker can report an end a little before the real
    one; that only means reading a few more events, which are not the answer."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from services.runtime.relay import partition_for

    consumer = AIOKafkaConsumer(
        **settings.kafka_client_options(), client_id="oms-cli", group_id=None, enable_auto_commit=False
    )
    await _start(consumer, settings)
    try:
        key = request.order_reference.encode()
        models: dict[str, type[Event]] = {}
        read: list[TopicPartition] = []
        for model in answers:
            partitions = consumer.partitions_for_topic(model.TOPIC)
            if not partitions:
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(model.TOPIC)
            if not partitions:
                raise CliError(f"topic {model.TOPIC} does not exist; create the topics with `oms topics create`")
            models[model.TOPIC] = model
            read.append(TopicPartition(model.TOPIC, partition_for(key, sorted(partitions))))
        consumer.assign(read)
        ends = await consumer.end_offsets(read)
        for partition, offset in ends.items():
            consumer.seek(partition, offset)
        await publish_event(settings, request)
        wanted = str(request.event_id)
        clock = asyncio.get_running_loop().time
        deadline = clock() + timeout
        found: list[Event] = []
        while (left := deadline - clock()) > 0 and len({answer.event_type for answer in found}) < len(models):
            batches = await consumer.getmany(timeout_ms=int(min(left, 0.5) * 1000))
            for partition, records in batches.items():
                for record in records:
                    try:
                        value = json.loads(record.value or b"")
                    except ValueError:
                        continue
                    if isinstance(value, dict) and value.get("causation_id") == wanted:
                        if not found:
                            deadline = clock() + settle
                        try:
                            found.append(models[partition.topic].model_validate(value))
                        except ValidationError as exc:
                            raise CliError(
                                f"the answer on {partition.topic} does not match its contract "
                                f"(a newer service?): {describe_validation_error(exc)}"
                            ) from exc
        return found
    finally:
        await consumer.stop()


async def with_connection(settings: Settings, service: str, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    engine = create_engine(settings, service)
    try:
        async with engine.connect() as conn:
            return await work(conn)
    except OSError as exc:
        raise CliError(f"cannot reach the {service} database: {exc}") from exc
    finally:
        await engine.dispose()


def item_ids_option(values: list[str] | None, option: str = "--items") -> list[int] | None:
    """Item ids as given: `--items 1,2,3`, `--items 1 --items 2`, or both; None when none were given."""
    if not values:
        return None
    ids: list[int] = []
    for value in values:
        for part in value.replace(",", " ").split():
            if not part.isdigit() or int(part) < 1:
                raise CliError(f"{option} {part!r} is not an item id (a whole number from 1)")
            ids.append(int(part))
    if not ids:
        raise CliError(f"{option}: no item ids given")
    return list(dict.fromkeys(ids))


def ask(
    settings: Settings,
    service: str,
    request: Event,
    answers: Sequence[type[Event]],
    *,
    wait: bool,
    timeout: float,
    queued: str,
    settle: float = 0,
    unanswered: str = "",
) -> list[Event]:
    """Publish `request` for `service`. With `wait`, its answers (see `publish_and_wait`), or an error with exit
    code 3 when none came in time (`unanswered` added to it: what else may be the reason); without, print
    `queued` (what was asked) and return no answers."""
    if not wait:
        asyncio.run(publish_event(settings, request))
        typer.echo(queued)
        return []
    found = asyncio.run(publish_and_wait(settings, request, answers, timeout, settle=settle))
    if not found:
        raise no_answer(service, request, timeout, unanswered)
    return found


def refused_lines(refused: Sequence[Any]) -> str:
    """Each refused item of a rejection (`item_id`, `state`, `reason`) on a line of its own."""
    return "".join(f"\n  item {item.item_id} ({item.state or 'not in the order'}): {item.reason}" for item in refused)


def no_answer(service: str, request: Event, timeout: float, unanswered: str = "") -> CliError:
    return CliError(
        f"no answer from {service} within {timeout:g} s (is it running?); request {request.event_id} is on "
        f"{request.event_type} and is handled when {service} reads it{unanswered}",
        exit_code=NO_ANSWER,
    )


def items_counted(ranges: Sequence[tuple[int, int]]) -> str:
    """How many items inclusive id ranges hold, in words: [(4, 5)] -> "2 items"."""
    count = sum(last - first + 1 for first, last in ranges)
    return f"{count} item{'s' if count != 1 else ''}"


def id_ranges_text(ranges: Sequence[tuple[int, int]]) -> str:
    """[(1, 3), (7, 7)] -> "1-3, 7"."""
    return ", ".join(str(first) if first == last else f"{first}-{last}" for first, last in ranges)


def settings_or_error() -> Settings:
    try:
        return Settings()
    except Exception as exc:
        raise CliError(f"invalid settings: {exc}") from exc
