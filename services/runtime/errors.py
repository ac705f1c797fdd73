"""Which failures are worth retrying."""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy import exc as sa_exc

_TRANSIENT_PG = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.LockNotAvailableError,
    asyncpg.exceptions.QueryCanceledError,
)


class PermanentError(Exception):
    """A message that can never succeed; it goes to the dead-letter topic with this reason."""


class RetryLater(Exception):
    """A message that arrived before what it depends on (e.g. a request before the fact it refers to):
    retried with backoff, the offset not advanced."""


def is_transient(exc: BaseException) -> bool:
    """True for failures of the infrastructure (database, network), not of the message."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, PermanentError):
            return False
        if isinstance(current, RetryLater):
            return True
        if isinstance(current, OSError | ConnectionError | asyncio.TimeoutError | TimeoutError):
            return True
        if isinstance(current, _TRANSIENT_PG):
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, sa_exc.InterfaceError | sa_exc.OperationalError | sa_exc.TimeoutError):
            return True
        if type(current).__module__.startswith("aiokafka") and getattr(current, "retriable", False):
            return True
        current = current.__cause__ or current.__context__
    return False
