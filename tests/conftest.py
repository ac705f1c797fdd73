"""Fixtures: the real servers (embedded by default, external when OMS_TEST_* addresses are given)
and the three services as real processes, started once per test session."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.runtime.embedded import EmbeddedStack, ServiceProcess, SmtpSink, free_port
from services.runtime.migrations import upgrade_all
from services.runtime.settings import SERVICES, Settings
from services.runtime.topics import ensure_topics
from tests.support import BCC

FIXTURE_PROCESSES = Path(__file__).parent / "fixtures" / "processes"


class Servers:
    def __init__(self, env: dict[str, str], sink: SmtpSink, logs_dir: Path) -> None:
        self.env = env
        self.sink = sink
        self.logs_dir = logs_dir
        self.settings = Settings(**{key[4:].lower(): value for key, value in env.items() if key.startswith("OMS_")})


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    base = tmp_path_factory.mktemp("oms")
    external_kafka = os.environ.get("OMS_TEST_KAFKA_BOOTSTRAP_SERVERS")
    external_db = os.environ.get("OMS_TEST_DATABASE_URL")
    extra = {
        "OMS_INVOICE_BCC": ",".join(BCC),
        "OMS_INVOICE_FROM": "Shop Billing <billing@shop.example>",
        "OMS_INVOICE_REPLY_TO": "support@shop.example",
        "OMS_CONSUMER_BATCH_SIZE": "200",
        "OMS_KAFKA_GROUP_PREFIX": f"oms-test-{os.getpid()}",
        # Spryker-format test processes next to the built-in ones (Prepayment01, GiftCardExpress01).
        "OMS_PROCESS_DIRS": str(FIXTURE_PROCESSES),
        "OMS_TIMEOUT_CHECK_INTERVAL_SECONDS": "0.5",
        "OMS_MAIL_RETRY_MAX_SECONDS": "1",
    }
    if external_kafka and external_db:
        sink = SmtpSink(base / "mail", free_port())
        sink.start()
        env = {
            "OMS_KAFKA_BOOTSTRAP_SERVERS": external_kafka,
            "OMS_DATABASE_URL": external_db,
            "OMS_SMTP_HOST": "127.0.0.1",
            "OMS_SMTP_PORT": str(sink.port),
            **extra,
        }
        yield Servers(env, sink, base / "logs")
        sink.stop()
        return
    stack = EmbeddedStack(base / "stack")
    stack.start()
    try:
        yield Servers({**stack.environment(), **extra}, stack.smtp, stack.logs_dir)
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def settings(servers: Servers) -> Settings:
    return servers.settings


@pytest.fixture(scope="session")
async def prepared(servers: Servers) -> Servers:
    await upgrade_all(servers.settings)
    await ensure_topics(servers.settings)
    return servers


class RunningServices:
    def __init__(self, servers: Servers) -> None:
        self.processes = {
            name: ServiceProcess(name, servers.env, servers.logs_dir / f"{name}.log") for name in SERVICES
        }

    def start(self, *names: str) -> None:
        for name in names or SERVICES:
            self.processes[name].start()

    def stop(self, *names: str) -> None:
        for name in names or SERVICES:
            self.processes[name].stop()

    def logs(self, name: str) -> str:
        return self.processes[name].log_file.read_text(errors="replace")


@pytest.fixture(scope="session")
def services(prepared: Servers) -> Iterator[RunningServices]:
    running = RunningServices(prepared)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
async def engine(prepared: Servers) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(prepared.settings.database_url)
    yield engine
    await engine.dispose()
