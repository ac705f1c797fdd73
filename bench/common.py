"""Shared by the benchmarks: a database to run against (embedded unless OMS_DATABASE_URL is set), and a meter of
its CPU time."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg

from services.runtime.db import asyncpg_dsn
from services.runtime.settings import Settings


@contextlib.contextmanager
def database() -> Iterator[Settings]:
    """Settings pointing at a migrated database: OMS_DATABASE_URL if set, else an embedded PostgreSQL."""
    import asyncio

    from services.runtime.migrations import upgrade_all

    if os.environ.get("OMS_DATABASE_URL"):
        settings = Settings()
        asyncio.run(upgrade_all(settings))
        yield settings
        return
    from services.runtime.embedded import EmbeddedPostgres, free_port

    with tempfile.TemporaryDirectory(prefix="oms-bench-") as base:
        postgres = EmbeddedPostgres(Path(base) / "pg", free_port(), Path(base) / "postgres.log")
        postgres.start()
        try:
            settings = Settings(database_url=postgres.url())
            asyncio.run(upgrade_all(settings))
            yield settings
        finally:
            postgres.stop()


async def postmaster_pid(server: asyncpg.Connection) -> int | None:
    """The PostgreSQL server's pid when it runs on this machine (its data directory readable), else None."""
    try:
        directory = Path(await server.fetchval("SHOW data_directory"))
        return int((directory / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, asyncpg.PostgresError):
        return None


@contextlib.asynccontextmanager
async def postgres_cpu(settings: Settings) -> AsyncIterator[Callable[[], float | None]]:
    """A meter of the CPU seconds PostgreSQL's server processes have used so far (None: the server does not run
    on this machine); read it before and after what is measured."""
    from bench.bench_placement import cpu_seconds, with_children

    server = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    try:
        postmaster = await postmaster_pid(server)
        yield lambda: cpu_seconds(with_children(postmaster)) if postmaster else None
    finally:
        await server.close()


def cpu_per(seconds: float | None, count: int, unit: str) -> str:
    """ ", PostgreSQL CPU N us per <unit>", or nothing when the CPU time is not known."""
    return f", PostgreSQL CPU {1e6 * seconds / count:,.0f} us per {unit}" if seconds is not None else ""
