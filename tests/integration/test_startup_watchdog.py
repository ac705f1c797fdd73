"""A service that has not joined its consumer groups in time says so and exits, so that it is started again.

The hang itself (a join the embedded broker never finishes) cannot be called up at will; the test gives a
real service, on the real broker, less time than its first join takes.
"""

from __future__ import annotations

import asyncio
import logging

from services.runtime.embedded import ServiceProcess, wait_until
from services.runtime.service import STARTUP_TIMEOUT_EXIT, startup_watchdog


async def test_a_service_not_joined_in_time_exits_with_the_reason(prepared, tmp_path):
    env = {
        **prepared.env,
        "OMS_KAFKA_GROUP_PREFIX": "watchdog-test",  # groups of its own: the running services keep theirs
        "OMS_STARTUP_TIMEOUT_SECONDS": "0.3",  # a join takes about a second on the embedded broker
    }
    process = ServiceProcess("shipping", env, tmp_path / "shipping.log")
    process.start()
    try:
        await wait_until(lambda: not process.running, timeout=60)
        assert process.process.returncode == STARTUP_TIMEOUT_EXIT
    finally:
        process.kill()
    log = (tmp_path / "shipping.log").read_text(errors="replace")
    assert "shipping has not joined all its consumer groups 0.3 s after starting" in log
    assert "Exiting with status 75 so that it is started again" in log


async def test_the_watchdog_lets_a_service_that_joined_or_stopped_run_on(caplog):
    exits: list[int] = []
    ready, stop = asyncio.Event(), asyncio.Event()
    ready.set()
    await startup_watchdog("shipping", ready, stop, 0.05, exits.append)
    ready.clear()
    stop.set()
    await startup_watchdog("shipping", ready, stop, 0.05, exits.append)
    assert exits == []
    with caplog.at_level(logging.ERROR):
        await startup_watchdog("shipping", asyncio.Event(), asyncio.Event(), 0.05, exits.append)
    assert exits == [STARTUP_TIMEOUT_EXIT]
    assert "shipping has not joined all its consumer groups" in caplog.text
