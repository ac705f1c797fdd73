"""Rewinding a consumer group to the start of its topics, for replays."""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import OffsetAndMetadata

from services.runtime.settings import Settings


class GroupBusy(RuntimeError):
    pass


async def rewind_group(settings: Settings, group_id: str, topics: list[str], timeout: float = 20) -> int:
    """Join the group alone, take every partition, commit the earliest offsets. Returns partitions rewound.

    The group's services must be stopped: a member still running would keep some partitions."""
    consumer = AIOKafkaConsumer(
        *topics,
        **settings.kafka_client_options(),
        group_id=group_id,
        enable_auto_commit=False,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
    )
    try:
        await asyncio.wait_for(consumer.start(), timeout=timeout)
    except TimeoutError:
        raise GroupBusy(
            f"group {group_id} did not let a new member in within {timeout:.0f}s: stop the service's replicas first"
        ) from None
    try:
        expected = sum(len(consumer.partitions_for_topic(topic) or ()) for topic in topics)
        deadline = time.monotonic() + timeout
        while len(consumer.assignment()) < expected or not expected:
            if time.monotonic() > deadline:
                raise GroupBusy(
                    f"group {group_id} did not hand over all {expected} partitions of {', '.join(topics)}: "
                    "stop the service's replicas first"
                )
            await asyncio.sleep(0.1)
            if not expected:
                expected = sum(len(consumer.partitions_for_topic(topic) or ()) for topic in topics)
        partitions = sorted(consumer.assignment())
        earliest = await consumer.beginning_offsets(partitions)
        await consumer.commit({tp: OffsetAndMetadata(earliest[tp], "") for tp in partitions})
        return len(partitions)
    finally:
        # Leaving the group can hang on some brokers (seen with Tansu once other members have come and
        # gone); the offsets are committed by then, and the session expires on its own.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(consumer.stop(), timeout=5)
