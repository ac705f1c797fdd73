"""The envelope every event carries, and the primitive types the contracts share."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamps must carry a time zone")
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
MinorUnits = Annotated[int, Field(description="Amount in the currency's minor unit (e.g. cents).")]
OrderReference = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$"),
]
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def no_control_characters(value: str) -> str:
    """Text that travels into e-mail headers, documents, ERPs and log lines: CR/LF and other control
    characters are refused (they are how header injection is done)."""
    found = _CONTROL.search(value)
    if found:
        raise ValueError(f"must not contain control characters (found {found.group()!r} at position {found.start()})")
    return value


CustomOrderReference = Annotated[
    str, StringConstraints(min_length=1, max_length=255), AfterValidator(no_control_characters)
]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Contract(BaseModel):
    """Base of every contract type: unknown fields are refused, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Money(Contract):
    amount: MinorUnits
    currency: CurrencyCode


class Event(Contract):
    """The common envelope. `event_type` is the topic the event is published to."""

    TOPIC: ClassVar[str] = ""
    SCHEMA_VERSION: ClassVar[int] = 1

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    event_type: str
    schema_version: int = 1
    occurred_at: UtcDatetime = Field(default_factory=utc_now)
    order_reference: OrderReference
    custom_order_reference: CustomOrderReference | None = None
    correlation_id: uuid.UUID | None = Field(
        default=None, description="Id of the first event of the conversation (the order.placed event)."
    )
    causation_id: uuid.UUID | None = Field(default=None, description="Id of the event that caused this one.")

    def caused(self) -> dict[str, uuid.UUID]:
        """Correlation fields for an event this one causes."""
        return {"correlation_id": self.correlation_id or self.event_id, "causation_id": self.event_id}
