"""The envelope every event carries, and the primitive types the contracts share."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from uuid_utils import uuid7


def to_utc(value: datetime) -> datetime:
    """The UtcDatetime rule: a time must carry a zone, and is kept in UTC."""
    if value.tzinfo is None:
        raise ValueError("timestamps must carry a time zone")
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(to_utc)]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
MinorUnits = Annotated[int, Field(description="Amount in the currency's minor unit (e.g. cents).")]
OrderReference = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$"),
]
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# The same rule as a pattern, checked by pydantic-core itself (no Python call per field of every message);
# `control_characters_problem` words its refusal.
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f-\x9f]*$"


def control_characters_problem(value: str) -> str | None:
    """Why `value` is refused for its control characters, or None when it has none."""
    found = _CONTROL.search(value)
    if found:
        return f"must not contain control characters (found {found.group()!r} at position {found.start()})"
    return None


def no_control_characters(value: str) -> str:
    """Text that travels into e-mail headers, documents, ERPs and log lines: CR/LF and other control
    characters are refused (they are how header injection is done)."""
    problem = control_characters_problem(value)
    if problem:
        raise ValueError(problem)
    return value


# An e-mail address as a checkout sends it: something before and after one "@", a dot in the domain, no
# whitespace or control characters (header injection), at most 254 characters (RFC 5321). Checked by
# pydantic-core itself: order.placed is the busiest message, and a full RFC parser in Python cost a sixth of
# its decoding. Deliverability is the mail server's business; a bounce does not lose the order.
EMAIL_PATTERN = r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$"
Email = Annotated[
    str,
    StringConstraints(max_length=254, pattern=EMAIL_PATTERN),
    Field(json_schema_extra={"format": "email"}),
]

CustomOrderReference = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=NO_CONTROL_CHARACTERS)]


_new_uuid = object.__new__
_set = object.__setattr__
_UNKNOWN = uuid.SafeUUID.unknown


def new_event_id() -> uuid.UUID:
    """A UUIDv7 (RFC 9562): random enough to be unique, and ordered by time, so the inboxes that index event
    ids append to their index instead of writing all over it. The standard library's UUID, filled in the way
    its own `UUID.__init__` leaves it (`int`, `is_safe`) without running the argument checks that cost 2 us of
    the 2.2 it takes uuid_utils.compat to make one (two per order placed)."""
    event_id = _new_uuid(uuid.UUID)
    _set(event_id, "int", uuid7().int)
    _set(event_id, "is_safe", _UNKNOWN)
    return event_id


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

    event_id: uuid.UUID = Field(default_factory=new_event_id)
    event_type: str
    schema_version: int = 1
    occurred_at: UtcDatetime = Field(default_factory=utc_now)
    order_reference: OrderReference
    custom_order_reference: CustomOrderReference | None = None
    correlation_id: uuid.UUID | None = Field(
        default=None, description="Id of the first event of the conversation (the order.placed event)."
    )
    causation_id: uuid.UUID | None = Field(default=None, description="Id of the event that caused this one.")

    def caused(self) -> Cause:
        """Correlation fields for an event this one causes."""
        return {"correlation_id": self.correlation_id or self.event_id, "causation_id": self.event_id}


Cause = dict[str, uuid.UUID]


def caused_by(document: Mapping[str, Any]) -> Cause:
    """`Event.caused()` for an event held as a document (a dict of its contract's fields)."""
    return {"correlation_id": document["correlation_id"] or document["event_id"], "causation_id": document["event_id"]}


def describe_validation_error(exc: ValidationError) -> str:
    """A contract's refusal in words: each problem with where it is (`customer.email: ...`)."""
    problems = []
    for error in exc.errors(include_url=False):
        location = ".".join(str(part) for part in error["loc"]) or "(message)"
        message = error["msg"]
        pattern = error.get("ctx", {}).get("pattern") if error["type"] == "string_pattern_mismatch" else None
        if pattern == EMAIL_PATTERN:
            message = f"{error['input']!r} is not an e-mail address (name@domain, no spaces or control characters)"
        elif pattern == NO_CONTROL_CHARACTERS:
            message = control_characters_problem(error["input"]) or message
        problems.append(f"{location}: {message}")
    return "; ".join(problems)
