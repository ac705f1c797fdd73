"""Settings read from the environment (prefix `OMS_`), shared by every service."""

from __future__ import annotations

from email.utils import getaddresses
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SERVICES = ("order_state", "invoicing", "shipping")


def check_mailbox(value: str) -> str:
    """One e-mail address, optionally with a display name ("Shop <billing@shop.example>"); no CR/LF."""
    if any(char in value for char in "\r\n\x00"):
        raise ValueError(f"{value!r} contains a line break (header injection)")
    addresses = getaddresses([value])
    if len(addresses) != 1 or "@" not in addresses[0][1] or " " in addresses[0][1]:
        raise ValueError(f"{value!r} is not one e-mail address")
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OMS_", env_file=None, extra="ignore")

    # Kafka
    kafka_bootstrap_servers: str = "localhost:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    kafka_enable_idempotence: bool = Field(
        default=True, description="Off only for brokers without InitProducerId (the embedded Tansu)."
    )
    kafka_session_timeout_ms: int = 10_000
    kafka_heartbeat_interval_ms: int = 3_000
    kafka_max_poll_interval_ms: int = 300_000
    kafka_topic_partitions: int = 6
    kafka_compression_type: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        default="zstd",
        description="How the relays compress the record batches they publish (consumers decompress whatever "
        "they get): less for the broker to store and copy, less for every consumer to fetch. zstd (level 3) "
        "shrinks JSON the most for little CPU; aiokafka runs lz4 at level 9, its slow high-compression mode.",
    )
    kafka_replication_factor: int = 1
    kafka_group_prefix: str = "oms"

    # PostgreSQL: one URL for all services, or one per service (each service owns its own schema).
    database_url: str = "postgresql+asyncpg://oms:oms@localhost:5432/oms"
    order_state_database_url: str | None = None
    invoicing_database_url: str | None = None
    shipping_database_url: str | None = None
    database_pool_size: int = 10

    # Consuming
    # Up to 2,000 records a batch, one transaction each; up to 4 MB fetched per partition at a time (Kafka's
    # default is 1 MB, about 270 ordinary order.placed). With 1,000 and 1 MB, a replica's batches came as they
    # were fetched (405, 810, ...) and it waited for the next fetch between them: two replicas placing a
    # burst spent about a tenth more CPU per order (alternating runs, bench/README).
    consumer_batch_size: int = 2_000
    consumer_max_partition_fetch_bytes: int = 4 * 1024 * 1024
    # How long the broker may hold a fetch that finds no new records (Kafka's default is 500 ms). A consumer has
    # one fetch in flight per broker, and it leaves out partitions whose fetched records are not handled yet: once
    # one of its partitions is drained, the next fetch asks for that one only and waits this long before the
    # others are asked again. Two replicas draining a burst of 40,000 orders stood idle 400 ms at a time near its
    # end: 8,003-9,980 orders/s stored at 500 ms vs 11,018-12,310 at 100 (3 alternating rounds). An idle replica
    # then asks ten times a second (two idle order_state replicas: 1% of a core more, the embedded broker 2.5%).
    consumer_fetch_max_wait_ms: int = 100
    consumer_max_attempts: int = Field(default=3, description="Attempts before a failing message is dead-lettered.")
    retry_backoff_max_seconds: float = 30.0
    relay_batch_size: int = 1_000

    # SMTP and invoices
    smtp_host: str = "localhost"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_use_tls: bool = False
    smtp_timeout_seconds: float = 10.0
    invoice_from: str = "Shop Billing <billing@shop.example>"
    invoice_reply_to: str | None = None
    invoice_bcc: Annotated[list[str], NoDecode] = Field(default_factory=list)
    invoice_reference_format: str = "{store}-INV-{number:06d}"
    credit_note_reference_format: str = "{store}-CN-{number:06d}"
    invoice_template_dir: str | None = Field(
        default=None, description="A folder replacing the built-in invoice templates (one sub-folder per locale)."
    )
    invoice_trigger: Literal["order.created", "invoice.generation_requested"] = Field(
        default="order.created",
        description="Invoice at placement, or when the process's Invoice/Generate command asks for it.",
    )
    mail_retry_max_seconds: float = 300.0

    default_process: str = "OmsDefault01"
    process_dirs: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Extra folders of process XML files (comma-separated), after the built-in one.",
    )
    payment_method_processes: dict[str, str] = Field(
        default_factory=dict, description='JSON: payment method -> process name, e.g. {"creditCard": "CreditCard01"}.'
    )
    fact_events: dict[str, str] = Field(
        default_factory=lambda: {"invoice.generated": "Invoice - generated"},
        description="JSON: fact topic -> process event it fires on the order's items.",
    )
    cancel_event: str = Field(default="cancel", description="The process event a cancellation fires.")
    customer_cancellation_window_minutes: float = Field(
        default=30, ge=0, description="How long after placement a customer may cancel."
    )
    timeout_check_interval_seconds: float = 1.0
    startup_timeout_seconds: float = Field(
        default=0,
        description="A service that has not joined all its consumer groups this long after starting exits with "
        "status 75, so that its supervisor starts it again; 0 waits forever. The embedded stack sets 90: its "
        "broker sometimes never finishes a consumer-group join.",
    )
    condition_check_interval_seconds: float = 10.0
    split_delivery_enabled: bool = True
    split_threshold: int | None = Field(
        default=None, ge=2, description="A line of this quantity or more stays one item (off by default)."
    )
    shipped_states: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["shipped"])
    delivered_states: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["delivered", "closed", "returned", "refunded"]
    )
    canceled_states: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["cancelled", "canceled", "invalid"]
    )
    shipment_methods: dict[str, dict[str, object]] = Field(
        default_factory=dict,
        description='JSON: method key -> {"name", "price", "carrier", "tax_rate"}, for splits into a new method.',
    )
    log_level: str = "INFO"

    @field_validator(
        "invoice_bcc", "process_dirs", "shipped_states", "delivered_states", "canceled_states", mode="before"
    )
    @classmethod
    def _split_bcc(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("invoice_from", "invoice_reply_to")
    @classmethod
    def _one_mailbox(cls, value: str | None) -> str | None:
        if value is not None:
            check_mailbox(value)
        return value

    @field_validator("invoice_reference_format", "credit_note_reference_format")
    @classmethod
    def _reference_format(cls, value: str) -> str:
        try:
            value.format(store="DE", number=1)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"{value!r} is not a valid format ({exc}); it may use {{store}} and {{number}}") from exc
        return value

    @field_validator("invoice_bcc")
    @classmethod
    def _mailboxes(cls, value: list[str]) -> list[str]:
        for mailbox in value:
            check_mailbox(mailbox)
        return value

    def database_url_for(self, service: str) -> str:
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r}; known: {', '.join(SERVICES)}")
        return getattr(self, f"{service}_database_url") or self.database_url

    def group_id(self, service: str) -> str:
        """One consumer group per service, for all the topics it consumes: each replica is one member with one
        consumer (a group per topic cost every replica a consumer, heartbeats and fetches per topic, busy or
        not: see services.runtime.consumer)."""
        return f"{self.kafka_group_prefix}.{service}"

    @property
    def kafka_batch_compression(self) -> str | None:
        """The codec the relays compress record batches with (aiokafka's compression_type), None for none."""
        return None if self.kafka_compression_type == "none" else self.kafka_compression_type

    def kafka_client_options(self) -> dict[str, object]:
        """Connection options common to aiokafka producers, consumers and admin clients."""
        options: dict[str, object] = {
            "bootstrap_servers": self.kafka_bootstrap_servers,
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_security_protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_sasl_username
            options["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            )
        if self.kafka_security_protocol.endswith("SSL"):
            from aiokafka.helpers import create_ssl_context

            options["ssl_context"] = create_ssl_context(cafile=self.kafka_ssl_cafile)
        return options


@lru_cache
def get_settings() -> Settings:
    return Settings()
