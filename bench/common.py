"""Shared by the benchmarks: a database to run against (embedded unless OMS_DATABASE_URL is set)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

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
