"""The FastStream Kafka broker a service consumes with."""

from __future__ import annotations

import ssl

from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from services.runtime.settings import Settings


def _security(settings: Settings) -> BaseSecurity | None:
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    use_ssl = protocol.endswith("SSL")
    context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile) if use_ssl else None
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    kind = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}
    return kind[settings.kafka_sasl_mechanism](
        username=settings.kafka_sasl_username or "", password=password, ssl_context=context, use_ssl=use_ssl
    )


def create_broker(settings: Settings, service: str) -> KafkaBroker:
    # Acknowledgement is manual and happens after the database transaction (see consumer.py);
    # the broker default (ACK_FIRST, auto-commit) would lose messages on failure.
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        security=_security(settings),
        client_id=f"oms-{service}",
        enable_idempotence=settings.kafka_enable_idempotence,
        graceful_timeout=30.0,
        description=f"OMS {service} service",
    )
