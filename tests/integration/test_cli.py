"""The `oms` command as a user meets it: help, clear errors without tracebacks, the embedded stack."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from services.runtime.embedded import ReceivedMail, free_port
from tests.support import oms


def test_help_lists_the_commands():
    result = oms("--help")
    assert result.returncode == 0
    for command in ("up", "service", "migrate", "publish-samples", "replay", "topics", "schemas"):
        assert command in result.stdout


def test_unknown_service_is_named_without_a_traceback():
    for args in (("service", "billing"), ("replay", "billing"), ("migrate", "billing")):
        result = oms(*args)
        assert result.returncode != 0
        assert "unknown service 'billing'" in result.stderr
        assert "order_state, invoicing, shipping" in result.stderr
        assert "Traceback" not in result.stderr


def test_unreachable_database_is_a_clear_error():
    url = f"postgresql+asyncpg://oms@127.0.0.1:{free_port()}/oms"
    result = oms("migrate", env={"OMS_DATABASE_URL": url})
    assert result.returncode != 0
    assert "cannot reach PostgreSQL" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_setting_is_a_clear_error():
    result = oms("topics", "create", env={"OMS_KAFKA_SECURITY_PROTOCOL": "CARRIER_PIGEON"})
    assert result.returncode != 0
    assert "invalid settings" in result.stderr and "kafka_security_protocol" in result.stderr
    assert "Traceback" not in result.stderr


def test_requests_name_an_unreachable_kafka_and_a_wrong_item_id():
    unreachable = {"OMS_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}
    for args in (
        ("order", "cancel", "DE--1"),
        ("order", "trigger", "DE--1", "pay"),
        ("order", "set-reference", "DE--1", "X"),
    ):
        result = oms(*args, env=unreachable)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith(f"error: cannot reach Kafka at {unreachable['OMS_KAFKA_BOOTSTRAP_SERVERS']}")
        assert "Traceback" not in result.stderr
    for items in ("4,x", "0", ","):
        result = oms("order", "cancel", "DE--1", "--items", items, env=unreachable)
        assert result.returncode == 2 and "error: --items" in result.stderr, (items, result.stderr)


def test_committed_json_schemas_are_current_according_to_the_cli():
    result = oms("schemas", "export", "--check")
    assert result.returncode == 0, result.stderr


def test_up_runs_everything_and_ctrl_c_stops_everything(tmp_path: Path):
    """`oms up` with two order_state replicas: the sample orders make it through, Ctrl-C stops every process."""
    data_dir = tmp_path / "oms"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services",
            "up",
            "--data-dir",
            str(data_dir),
            "--samples",
            "2",
            "--kafka-port",
            "0",
            "--postgres-port",
            "0",
            "--smtp-port",
            "0",
            "--replicas",
            "order_state=2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    children: list[psutil.Process] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            output.append(line)
            if "Press Ctrl-C to stop." in line or not line:
                break
        text = "".join(output)
        assert "OMS is running." in text, text
        assert f"e-mails         : {data_dir.resolve() / 'mail'}" in text
        assert f"logs            : {data_dir.resolve() / 'logs'}" in text
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) >= 6  # PostgreSQL, Tansu and the services (and their helpers)
        services = [" ".join(child.cmdline()[-2:]) for child in children if "services" in child.cmdline()]
        assert sorted(services) == [
            "service invoicing",
            "service order_state",
            "service order_state",  # --replicas order_state=2: two members of its consumer groups
            "service shipping",
        ]

        # The sample orders make it through: two invoice e-mails land in the sink's folder.
        mails: list[ReceivedMail] = []
        while time.monotonic() < deadline and len(mails) < 2:
            mails = [ReceivedMail.load(path) for path in sorted((data_dir / "mail").glob("*.eml"))]
            time.sleep(0.3)
        assert len(mails) == 2
        # Sample order 1 is German, sample order 2 English.
        assert sorted(mail.message["Subject"].split()[0] for mail in mails) == ["Invoice", "Rechnung"]

        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=90)
        assert process.returncode == 0, rest
        assert "stopped." in rest
        _gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"left behind: {[p.info if hasattr(p, 'info') else p.pid for p in alive]}"
    finally:
        if process.poll() is None:
            process.kill()
        for child in children:
            if child.is_running():
                child.kill()
