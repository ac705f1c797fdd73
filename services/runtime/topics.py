"""The topics the system uses, and their creation."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from schemas.registry import EVENT_MODELS
from services.runtime.settings import SERVICES, Settings
from services.runtime.unit_of_work import dlq_topic

log = logging.getLogger(__name__)


def all_topics() -> list[str]:
    return sorted(EVENT_MODELS) + [dlq_topic(service) for service in SERVICES]


async def ensure_topics(settings: Settings, topics: list[str] | None = None) -> list[str]:
    """Create missing topics; returns the ones created."""
    wanted = topics or all_topics()
    admin = AIOKafkaAdminClient(**settings.kafka_client_options(), client_id="oms-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [topic for topic in wanted if topic not in existing]
        if not missing:
            return []
        response = await admin.create_topics(
            [NewTopic(topic, settings.kafka_topic_partitions, settings.kafka_replication_factor) for topic in missing]
        )
        created = []
        for topic, code, message in (error[:3] for error in response.topic_errors):
            if code == 0:
                created.append(topic)
            elif code != TopicAlreadyExistsError.errno:
                raise RuntimeError(f"cannot create topic {topic}: error {code}: {message}")
        log.info("created topics: %s", ", ".join(created))
        return created
    finally:
        await admin.close()
