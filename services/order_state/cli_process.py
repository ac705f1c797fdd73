"""`oms process ...`: validate and draw process definitions."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree as SafeET
import typer
from defusedxml import DefusedXmlException

import services.order_state
from services.order_state.domain.process.drawing import process_to_dot
from services.order_state.domain.process.loader import ProcessDefinitionError, load_process
from services.order_state.domain.process.model import Process

process_app = typer.Typer(help="Order item processes (Spryker OMS XML).", no_args_is_help=True)

PROCESS_DIR = Path(services.order_state.__file__).parent / "processes"
FORMATS = {".svg": "svg", ".png": "png"}
RENDER_TIMEOUT_SECONDS = 120


class DrawError(Exception):
    """A problem the user can fix (unknown process, bad output name, renderer missing or failing)."""


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def describe(path: Path, process: Process) -> str:
    return (
        f"{path}: ok (process {process.name}: {len(process.states)} states, "
        f"{len(process.transitions)} transitions, {len(process.events)} events)"
    )


def check_file(path: Path) -> tuple[Process | None, list[str]]:
    """The loaded process, or the problems found, each a line naming the file, the element and the problem."""
    try:
        return load_process(path), []
    except ProcessDefinitionError as exc:
        return None, [str(problem) for problem in exc.problems] or [f"{path}: cannot be loaded"]
    except IsADirectoryError:
        return None, [f"{path}: (file): is a directory, not a process file"]
    except OSError as exc:
        return None, [f"{path}: (file): cannot be read: {exc.strerror or exc}"]
    except Exception as exc:  # the loader should report everything as a problem; never show a traceback
        return None, [f"{path}: (document): cannot be loaded: {type(exc).__name__}: {exc}"]


@process_app.command("check")
def check(
    files: Annotated[list[Path], typer.Argument(help="Process XML files (main processes) to validate.")],
) -> None:
    """Validate process files with their subprocesses; every problem names the file, the element and what is wrong."""
    failed = 0
    for path in files:
        process, problems = check_file(path)
        if process is not None:
            typer.echo(describe(path, process))
            continue
        failed += 1
        for problem in problems:
            typer.echo(problem)
    if failed:
        raise typer.Exit(1)


def _main_process_names(path: Path) -> list[str]:
    """Names of the main processes declared in `path`; nothing for files that cannot be read."""
    try:
        root = SafeET.parse(path, forbid_dtd=True, forbid_entities=True, forbid_external=True).getroot()
    except (OSError, ParseError, DefusedXmlException, LookupError, ValueError):
        return []
    return [
        child.get("name", "")
        for child in root
        if isinstance(child.tag, str)
        and child.tag.rpartition("}")[2] == "process"
        and (child.get("main") or "").strip().lower() in ("true", "1", "yes")
    ]


def find_process_file(name: str, directory: Path) -> Path:
    """The file holding process `name`: a path to an XML file, `DIR/NAME.xml`, or a file whose main process is NAME."""
    given = Path(name)
    if given.suffix.lower() == ".xml" or os.sep in name or given.is_file():
        if not given.is_file():
            raise DrawError(f"process file not found: {given}")
        return given
    if not directory.is_dir():
        raise DrawError(f"process directory not found: {directory}")
    by_stem = directory / f"{name}.xml"
    if by_stem.is_file():
        return by_stem
    known: list[str] = []
    for path in sorted(path for path in directory.glob("*.xml") if path.is_file()):
        names = _main_process_names(path)
        if name in names:
            return path
        known.extend(names)
    listing = ", ".join(sorted(set(known))) or "none"
    raise DrawError(f"no process named {name!r} in {directory} (processes there: {listing})")


def find_renderer() -> Path:
    """Graphviz's `dot` when installed, else the `graphviz-pure` executable installed with the wheel."""
    dot = shutil.which("dot")
    if dot:
        return Path(dot)
    beside_python = Path(sys.executable).parent / "graphviz-pure"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return beside_python
    pure = shutil.which("graphviz-pure")
    if pure:
        return Path(pure)
    raise DrawError(
        "no Graphviz renderer found: install Graphviz (the `dot` command) or the graphviz-pure wheel "
        f"(expected {beside_python})"
    )


def render(source: str, out: Path, fmt: str, renderer: Path | None = None) -> Path:
    """Render DOT `source` to `out` in `fmt` ("svg" or "png"); `out` is replaced only when rendering succeeds."""
    renderer = renderer or find_renderer()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DrawError(f"cannot create {out.parent}: {exc.strerror or exc}") from exc
    partial = out.with_name(f".{out.stem}.{os.getpid()}.partial{out.suffix}")
    try:
        try:
            result = subprocess.run(
                [str(renderer), f"-T{fmt}", "-o", str(partial)],
                input=source.encode(),
                capture_output=True,
                timeout=RENDER_TIMEOUT_SECONDS,
                check=False,
            )
        except OSError as exc:
            raise DrawError(f"cannot run {renderer}: {exc.strerror or exc}") from exc
        except subprocess.TimeoutExpired as exc:
            raise DrawError(f"{renderer} did not finish within {RENDER_TIMEOUT_SECONDS} seconds") from exc
        if result.returncode != 0 or not partial.is_file() or partial.stat().st_size == 0:
            errors = [
                line
                for line in result.stderr.decode(errors="replace").splitlines()
                if line.strip() and "no value for width of non-ASCII character" not in line
            ]
            detail = "; ".join(errors[-5:]) or f"exit code {result.returncode}"
            raise DrawError(f"rendering with {renderer.name} failed: {detail}")
        try:
            os.replace(partial, out)
        except OSError as exc:
            raise DrawError(f"cannot write {out}: {exc.strerror or exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return out


@process_app.command("draw")
def draw(
    name: Annotated[str, typer.Argument(help="A process name in the process directory, or a path to an XML file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file: .svg or .png.")],
    directory: Annotated[
        Path, typer.Option("--dir", help="Where process files are looked up by name.", show_default=True)
    ] = PROCESS_DIR,
) -> None:
    """Draw a process as a graph: states, transitions labelled with their events, the happy path in green."""
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise _fail(f"cannot draw to {out}: the output file must end in .svg or .png")
    try:
        path = find_process_file(name, directory)
        process, problems = check_file(path)
        if process is None:
            raise DrawError(f"process {name!r} cannot be loaded:\n" + "\n".join(f"  {line}" for line in problems))
        # The PNG renderer's fonts may lack the clock symbol; a word reads better than an empty box.
        source = process_to_dot(process, timeout_symbol="⏱" if fmt == "svg" else "timeout")
        written = render(source, out, fmt)
    except DrawError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"wrote {written} (process {process.name}: {len(process.states)} states)")
