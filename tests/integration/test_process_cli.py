"""`oms process check` and `oms process draw` as a user runs them: exit codes, output, the files written."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from services.order_state import cli_process
from services.order_state.cli_process import DrawError, find_renderer, render
from tests.support import oms

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = Path("services/order_state/processes/OmsDefault01.xml")
FIXTURES = Path("tests/fixtures/processes")
INVALID = FIXTURES / "invalid"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DEFAULT_STATES = [
    "new",
    "payment pending",
    "invalid",
    "paid",
    "confirmed",
    "Invoice - ready",
    "Invoice - requested",
    "Invoice - generated",
    "shipped",
    "delivered",
    "closed",
    "cancelled",
    "returned",
    "refunded",
]


def svg_texts(path: Path) -> list[str]:
    """The texts a reader sees in a drawing (our own renderer's output, so plain ElementTree is fine)."""
    root = ElementTree.fromstring(path.read_bytes())
    return [element.text or "" for element in root.iter("{http://www.w3.org/2000/svg}text")]


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr


# --- check ----------------------------------------------------------------------------------------


def test_process_help_lists_check_and_draw():
    result = oms("process", "--help")

    assert result.returncode == 0
    assert "check" in result.stdout and "draw" in result.stdout


def test_check_reports_valid_processes():
    result = oms("process", "check", DEFAULT, FIXTURES / "Prepayment01.xml", FIXTURES / "GiftCardExpress01.xml")

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        f"{DEFAULT}: ok (process OmsDefault01: 14 states, 18 transitions, 12 events)",
        f"{FIXTURES / 'Prepayment01.xml'}: ok (process Prepayment01: 10 states, 14 transitions, 10 events)",
        f"{FIXTURES / 'GiftCardExpress01.xml'}: ok (process GiftCardExpress01: 10 states, 12 transitions, 8 events)",
    ]


def test_check_reports_every_problem_and_fails():
    files = [
        DEFAULT,
        INVALID / "UnknownTargetState01.xml",
        INVALID / "UnknownCondition01.xml",
        INVALID / "UnknownCommand01.xml",
        INVALID / "DuplicateState01.xml",
        INVALID / "MissingSubprocess01.xml",
        INVALID / "BadTimeout01.xml",
        INVALID / "NotWellFormed01.xml",
    ]

    result = oms("process", "check", *files)

    assert result.returncode == 1
    no_traceback(result)
    assert result.stdout.splitlines() == [
        f"{DEFAULT}: ok (process OmsDefault01: 14 states, 18 transitions, 12 events)",
        f'{files[1]}: <transition happy="true"/>: target state "shiped" is not declared in any <states>',
        f'{files[2]}: <transition happy="true" condition="DummyPayment/IsShippable"/>: '
        'unknown condition "DummyPayment/IsShippable" (no plugin registered under that name)',
        f'{files[3]}: <event name="ship" manual="true" command="Warehouse/PrintLabel"/>: '
        'unknown command "Warehouse/PrintLabel" (no plugin registered under that name)',
        f'{files[4]}: <state name="shipped"/>: duplicate state "shipped" '
        f"(first declared in {INVALID / 'InvalidSubprocess/Delivery01.xml'})",
        f'{files[5]}: <process name="Returns" file="InvalidSubprocess/Returns01.xml" prefix="Return"/>: '
        f"subprocess file not found: {INVALID / 'InvalidSubprocess/Returns01.xml'}",
        f'{files[6]}: <event name="ship" timeout="half an hour"/>: timeout \'half an hour\' is not understood; '
        "use e.g. '30 minutes', '1 hour', '15 days' (units: second, minute, hour, day, week)",
        f"{files[7]}: (document): not well-formed XML: not well-formed (invalid token): line 22, column 8",
    ]


def test_check_refuses_hostile_xml_without_reading_or_expanding_it():
    result = oms("process", "check", INVALID / "ExternalEntity01.xml", INVALID / "BillionLaughs01.xml")

    assert result.returncode == 1
    no_traceback(result)
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    for line, name in zip(lines, ("ExternalEntity01.xml", "BillionLaughs01.xml"), strict=True):
        assert line.startswith(
            f"{INVALID / name}: <!DOCTYPE>: refused: DTDs, entity declarations and external references are not allowed"
        )
    assert "root:" not in result.stdout and "lollol" not in result.stdout


def test_check_reports_missing_files_and_folders_as_problems(tmp_path):
    folder = tmp_path / "Folder01.xml"
    folder.mkdir()
    missing = FIXTURES / "DoesNotExist01.xml"

    result = oms("process", "check", missing, folder, DEFAULT)

    assert result.returncode == 1
    no_traceback(result)
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0] == f"{missing}: (file): file not found"
    assert lines[1].startswith(f"{folder}: ") and "directory" in lines[1]
    assert lines[2] == f"{DEFAULT}: ok (process OmsDefault01: 14 states, 18 transitions, 12 events)"


def test_check_reports_what_the_loader_does_not_catch_without_a_traceback(tmp_path):
    encoding = tmp_path / "Encoding01.xml"
    encoding.write_text('<?xml version="1.0" encoding="x-klingon"?><statemachine xmlns="spryker:oms-01"/>')

    result = oms("process", "check", encoding)

    assert result.returncode == 1
    no_traceback(result)
    (line,) = result.stdout.splitlines()
    assert line.startswith(f"{encoding}: ") and "x-klingon" in line


def test_check_needs_a_file():
    result = oms("process", "check")

    assert result.returncode == 2
    no_traceback(result)
    assert "Missing argument" in result.stderr


# --- draw -----------------------------------------------------------------------------------------


def test_draw_the_default_process_as_svg(tmp_path):
    out = tmp_path / "x.svg"

    result = oms("process", "draw", "OmsDefault01", "--out", out)

    assert result.returncode == 0, result.stderr
    no_traceback(result)
    assert result.stdout.strip() == f"wrote {out} (process OmsDefault01: 14 states)"
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    texts = svg_texts(out)
    for state in DEFAULT_STATES:
        assert state in texts
    for label in ("close cancellation window", "⏱ 30 minutes", "command: Invoice/Generate", "[DummyPayment/IsPayed]"):
        assert label in texts
    assert 'class="edge happy"' in svg and 'class="node happy"' in svg
    assert [path.name for path in tmp_path.iterdir()] == ["x.svg"]  # no partial files left behind


def test_draw_the_default_process_as_png(tmp_path):
    out = tmp_path / "drawings" / "x.png"

    result = oms("process", "draw", "OmsDefault01", "--out", out)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {out} (process OmsDefault01: 14 states)"
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    assert out.stat().st_size > 10_000


def test_draw_refuses_other_extensions(tmp_path):
    for name in ("x.pdf", "x", "x.svg.txt"):
        out = tmp_path / name

        result = oms("process", "draw", "OmsDefault01", "--out", out)

        assert result.returncode != 0
        no_traceback(result)
        assert result.stderr.strip() == f"error: cannot draw to {out}: the output file must end in .svg or .png"
        assert not out.exists()


def test_draw_names_an_unknown_process_and_the_known_ones(tmp_path):
    result = oms("process", "draw", "OmsDefault02", "--out", tmp_path / "x.svg")

    assert result.returncode != 0
    no_traceback(result)
    processes = ROOT / "services/order_state/processes"
    assert result.stderr.strip() == (
        f"error: no process named 'OmsDefault02' in {processes} (processes there: OmsDefault01)"
    )
    assert not (tmp_path / "x.svg").exists()


def test_draw_looks_processes_up_in_another_directory(tmp_path):
    out = tmp_path / "prepayment.svg"

    result = oms("process", "draw", "Prepayment01", "--dir", FIXTURES, "--out", out)

    assert result.returncode == 0, result.stderr
    texts = svg_texts(out)
    assert "Payment - waiting" in texts and "picking" in texts
    assert "⏱ 7 days (OmsTimeout/Initiation)" in texts


def test_draw_finds_a_process_by_its_name_not_only_its_file_name(tmp_path):
    shutil.copy(ROOT / FIXTURES / "GiftCardExpress01.xml", tmp_path / "gift-cards.xml")
    out = tmp_path / "gift.png"

    result = oms("process", "draw", "GiftCardExpress01", "--dir", tmp_path, "--out", out)

    assert result.returncode == 0, result.stderr
    assert out.read_bytes().startswith(PNG_SIGNATURE)


def test_draw_a_process_file_given_by_path(tmp_path):
    out = tmp_path / "gift.svg"

    result = oms("process", "draw", FIXTURES / "GiftCardExpress01.xml", "--out", out)

    assert result.returncode == 0, result.stderr
    assert "gift card created" in svg_texts(out)


def test_draw_a_missing_directory_or_file_is_a_clear_error(tmp_path):
    missing_dir = oms("process", "draw", "OmsDefault01", "--dir", tmp_path / "nowhere", "--out", tmp_path / "x.svg")
    missing_file = oms("process", "draw", tmp_path / "Nowhere01.xml", "--out", tmp_path / "x.svg")

    assert missing_dir.returncode != 0 and missing_file.returncode != 0
    no_traceback(missing_dir)
    no_traceback(missing_file)
    assert missing_dir.stderr.strip() == f"error: process directory not found: {tmp_path / 'nowhere'}"
    assert missing_file.stderr.strip() == f"error: process file not found: {tmp_path / 'Nowhere01.xml'}"


def test_draw_an_invalid_process_lists_its_problems(tmp_path):
    result = oms("process", "draw", INVALID / "UnknownCommand01.xml", "--out", tmp_path / "x.svg")

    assert result.returncode != 0
    no_traceback(result)
    assert result.stderr.splitlines() == [
        f"error: process '{INVALID / 'UnknownCommand01.xml'}' cannot be loaded:",
        f'  {INVALID / "UnknownCommand01.xml"}: <event name="ship" manual="true" command="Warehouse/PrintLabel"/>: '
        'unknown command "Warehouse/PrintLabel" (no plugin registered under that name)',
    ]
    assert not (tmp_path / "x.svg").exists()


def test_draw_odd_state_names(tmp_path):
    path = tmp_path / "Odd01.xml"
    path.write_text(
        """<statemachine xmlns="spryker:oms-01">
    <process name="Odd01" main="true">
        <states>
            <state name="new"/>
            <state name="say &quot;hi&quot;"/>
            <state name="&lt;b&gt;bold&lt;/b&gt;"/>
            <state name="back\\slash: x"/>
        </states>
        <transitions>
            <transition happy="true"><source>new</source><target>say "hi"</target><event>go</event></transition>
            <transition><source>say "hi"</source><target>&lt;b&gt;bold&lt;/b&gt;</target><event>go</event></transition>
            <transition><source>&lt;b&gt;bold&lt;/b&gt;</source><target>back\\slash: x</target></transition>
        </transitions>
        <events><event name="go" manual="true"/></events>
    </process>
</statemachine>"""
    )
    out = tmp_path / "odd.svg"

    result = oms("process", "draw", path, "--out", out)

    assert result.returncode == 0, result.stderr
    texts = svg_texts(out)
    assert {'say "hi"', "<b>bold</b>", "back\\slash: x", "(condition check)"} <= set(texts)


# --- the renderer ---------------------------------------------------------------------------------


def test_the_renderer_is_dot_when_installed_else_graphviz_pure(monkeypatch, tmp_path):
    fake_dot = tmp_path / "dot"
    monkeypatch.setattr(cli_process.shutil, "which", lambda name: str(fake_dot) if name == "dot" else None)
    assert find_renderer() == fake_dot

    monkeypatch.setattr(cli_process.shutil, "which", lambda name: None)
    assert find_renderer() == Path(sys.executable).parent / "graphviz-pure"

    monkeypatch.setattr(cli_process.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(cli_process.shutil, "which", lambda name: "/opt/bin/graphviz-pure" if name != "dot" else None)
    assert find_renderer() == Path("/opt/bin/graphviz-pure")

    monkeypatch.setattr(cli_process.shutil, "which", lambda name: None)
    with pytest.raises(DrawError, match=r"no Graphviz renderer found: install Graphviz \(the `dot` command\)"):
        find_renderer()


def test_a_rendering_failure_is_a_clear_error_and_keeps_the_old_file(tmp_path):
    out = tmp_path / "x.svg"
    out.write_text("the previous drawing")

    with pytest.raises(DrawError, match=r"rendering with .* failed: .*syntax error"):
        render("digraph { a -> ", out, "svg")

    assert out.read_text() == "the previous drawing"
    assert [path.name for path in tmp_path.iterdir()] == ["x.svg"]


def test_a_renderer_that_cannot_run_is_a_clear_error(tmp_path):
    with pytest.raises(DrawError, match=r"cannot run .*no-such-renderer"):
        render("digraph { a }", tmp_path / "x.svg", "svg", renderer=tmp_path / "no-such-renderer")
