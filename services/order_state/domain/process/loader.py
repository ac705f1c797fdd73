"""Loads processes written in Spryker's OMS XML dialect (namespace `spryker:oms-01`).

Subprocesses are pulled in with `<subprocesses><process>NAME</process></subprocesses>` and a
`<process name="NAME" file="PATH" prefix="..."/>` definition; a prefix is prepended with " - " to
every state and event name of that file, in `<source>`, `<target>` and `<event>` too. States and
events of all files form one namespace. Hostile XML (DTDs, entities, external references) is refused.
Every problem found names the file, the element and what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from services.order_state.domain.process.model import EventDefinition, Process, State, Transition
from services.order_state.domain.process.plugins import PluginRegistry, default_registry
from services.order_state.domain.process.timeouts import parse_timeout

NAMESPACE = "spryker:oms-01"
PREFIX_DELIMITER = " - "


@dataclass(frozen=True)
class Problem:
    file: Path
    element: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.element}: {self.message}"


class ProcessDefinitionError(ValueError):
    """A process that cannot be loaded; `problems` lists every one found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


def _tag(element: Element) -> str:
    return element.tag.rpartition("}")[2]


def _describe(element: Element) -> str:
    attributes = " ".join(f'{name}="{value}"' for name, value in element.attrib.items() if "}" not in name)
    text = (element.text or "").strip()
    inner = f">{text}</{_tag(element)}>" if text else "/>"
    return f"<{_tag(element)}{' ' + attributes if attributes else ''}{inner}"


def _children(element: Element, tag: str) -> list[Element]:
    return [child for child in element if isinstance(child.tag, str) and _tag(child) == tag]


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


@dataclass
class _Collected:
    states: dict[str, tuple[State, Path, Element]]
    events: dict[str, tuple[EventDefinition, Path, Element]]
    transitions: list[tuple[Transition, Path, Element]]
    files: list[Path]


class _Loader:
    def __init__(self, plugins: PluginRegistry, base_dir: Path) -> None:
        self.plugins = plugins
        self.base_dir = base_dir
        self.problems: list[Problem] = []
        self.collected = _Collected({}, {}, [], [])

    def problem(self, file: Path, element: Element | str, message: str) -> None:
        where = element if isinstance(element, str) else _describe(element)
        self.problems.append(Problem(file, where, message))

    def parse(self, file: Path) -> Element | None:
        try:
            root = SafeET.parse(file, forbid_dtd=True, forbid_entities=True, forbid_external=True).getroot()
        except FileNotFoundError:
            self.problem(file, "(file)", "file not found")
            return None
        except OSError as exc:
            self.problem(file, "(file)", f"cannot be read: {exc.strerror or exc}")
            return None
        except DefusedXmlException as exc:
            self.problem(
                file,
                "<!DOCTYPE>",
                f"refused: DTDs, entity declarations and external references are not allowed ({exc})",
            )
            return None
        except (ParseError, LookupError) as exc:
            self.problem(file, "(document)", f"not well-formed XML: {exc}")
            return None
        namespace = root.tag.partition("}")[0].lstrip("{") if root.tag.startswith("{") else ""
        if _tag(root) != "statemachine" or namespace not in (NAMESPACE, ""):
            self.problem(
                file, f"<{_tag(root)}>", f'not an OMS process file: expected <statemachine xmlns="{NAMESPACE}">'
            )
            return None
        return root

    def load_main(self, file: Path, name: str | None) -> str | None:
        root = self.parse(file)
        if root is None:
            return None
        processes = [p for p in _children(root, "process") if "file" not in p.attrib]
        chosen = None
        if name is not None:
            chosen = next((p for p in processes if p.get("name") == name), None)
            if chosen is None:
                self.problem(file, "<statemachine>", f'no <process name="{name}"> in this file')
                return None
        else:
            mains = [p for p in processes if _flag(p.get("main"))]
            chosen = mains[0] if mains else (processes[0] if len(processes) == 1 else None)
            if chosen is None:
                self.problem(file, "<statemachine>", 'no <process main="true"> in this file')
                return None
        self.load_process(file, root, chosen, prefix="", chain=(file.resolve(),))
        return chosen.get("name")

    def load_process(self, file: Path, root: Element, process: Element, prefix: str, chain: tuple[Path, ...]) -> None:
        self.collected.files.append(file)

        def named(value: str) -> str:
            return f"{prefix}{PREFIX_DELIMITER}{value}" if prefix else value

        definitions = {p.get("name"): p for p in _children(root, "process") if "file" in p.attrib}
        for block in _children(process, "subprocesses"):
            for reference in _children(block, "process"):
                sub_name = (reference.text or "").strip()
                definition = definitions.get(sub_name)
                if definition is None:
                    self.problem(
                        file, reference, f'subprocess "{sub_name}" has no <process name="{sub_name}" file="..."/>'
                    )
                    continue
                self.load_subprocess(file, definition, prefix, chain)

        for block in _children(process, "states"):
            for element in _children(block, "state"):
                raw = (element.get("name") or "").strip()
                if not raw:
                    self.problem(file, element, "state without a name")
                    continue
                name = named(raw)
                if name in self.collected.states:
                    _state, other_file, _ = self.collected.states[name]
                    self.problem(file, element, f'duplicate state "{name}" (first declared in {other_file})')
                    continue
                flags = frozenset((flag.text or "").strip() for flag in _children(element, "flag"))
                state = State(name, flags, _flag(element.get("reserved")), element.get("display"))
                self.collected.states[name] = (state, file, element)

        for block in _children(process, "events"):
            for element in _children(block, "event"):
                self.load_event(file, element, named)

        for block in _children(process, "transitions"):
            for element in _children(block, "transition"):
                source = [(e.text or "").strip() for e in _children(element, "source")]
                target = [(e.text or "").strip() for e in _children(element, "target")]
                event = [(e.text or "").strip() for e in _children(element, "event")]
                if len(source) != 1 or len(target) != 1 or not source[0] or not target[0] or len(event) > 1:
                    self.problem(
                        file, element, "a transition needs exactly one <source>, one <target> and at most one <event>"
                    )
                    continue
                condition = element.get("condition") or None
                if condition is not None and condition not in self.plugins.conditions:
                    self.problem(
                        file, element, f'unknown condition "{condition}" (no plugin registered under that name)'
                    )
                transition = Transition(
                    source=named(source[0]),
                    target=named(target[0]),
                    event=named(event[0]) if event and event[0] else None,
                    condition=condition,
                    happy=_flag(element.get("happy")),
                )
                self.collected.transitions.append((transition, file, element))

    def load_event(self, file: Path, element: Element, named: object) -> None:
        raw = (element.get("name") or "").strip()
        if not raw:
            self.problem(file, element, "event without a name")
            return
        name = named(raw)  # type: ignore[operator]
        timeout = None
        if element.get("timeout"):
            try:
                timeout = parse_timeout(element.get("timeout", ""))
            except ValueError as exc:
                self.problem(file, element, str(exc))
        command = element.get("command") or None
        if command is not None and command not in self.plugins.commands:
            self.problem(file, element, f'unknown command "{command}" (no plugin registered under that name)')
        processor = element.get("timeoutProcessor") or None
        if processor is not None and processor not in self.plugins.timeout_processors:
            self.problem(
                file, element, f'unknown timeout processor "{processor}" (no plugin registered under that name)'
            )
        event = EventDefinition(
            name=name,
            manual=_flag(element.get("manual")),
            on_enter=_flag(element.get("onEnter")),
            timeout=timeout,
            timeout_processor=processor,
            command=command,
        )
        if name in self.collected.events:
            existing, other_file, _ = self.collected.events[name]
            if existing != event:
                self.problem(file, element, f'event "{name}" is declared differently in {other_file}')
            return
        self.collected.events[name] = (event, file, element)

    def load_subprocess(self, including: Path, definition: Element, outer_prefix: str, chain: tuple[Path, ...]) -> None:
        relative = definition.get("file", "")
        candidates = [self.base_dir / relative, including.parent / relative]
        path = next((candidate for candidate in candidates if candidate.is_file()), None)
        if path is None:
            self.problem(including, definition, f"subprocess file not found: {candidates[0]}")
            return
        if path.resolve() in chain:
            self.problem(including, definition, f"subprocess file includes itself: {path}")
            return
        root = self.parse(path)
        if root is None:
            return
        wanted = definition.get("name")
        processes = [p for p in _children(root, "process") if "file" not in p.attrib]
        process = next((p for p in processes if p.get("name") == wanted), processes[0] if len(processes) == 1 else None)
        if process is None:
            self.problem(path, "<statemachine>", f'no <process name="{wanted}"> in this file')
            return
        own = (definition.get("prefix") or "").strip()
        prefix = PREFIX_DELIMITER.join(part for part in (outer_prefix, own) if part)
        self.load_process(path, root, process, prefix, (*chain, path.resolve()))

    def check(self, process_name: str) -> None:
        states = self.collected.states
        events = self.collected.events
        for transition, file, element in self.collected.transitions:
            for role, state in (("source", transition.source), ("target", transition.target)):
                if state not in states:
                    self.problem(file, element, f'{role} state "{state}" is not declared in any <states>')
            if transition.event is not None and transition.event not in events:
                self.problem(file, element, f'event "{transition.event}" is not declared in any <events>')
        if "new" not in states:
            self.problem(self.collected.files[0], f'<process name="{process_name}">', 'no initial state "new"')


def load_process(path: Path | str, *, name: str | None = None, plugins: PluginRegistry | None = None) -> Process:
    """Load the main process of a file (or the one called `name`) with its subprocesses.

    Subprocess paths are relative to the main file's folder (as in Spryker's config/Zed/oms)."""
    path = Path(path)
    loader = _Loader(plugins or default_registry(), path.parent)
    process_name = loader.load_main(path, name)
    if process_name is not None and not loader.problems:
        loader.check(process_name)
    if loader.problems or process_name is None:
        raise ProcessDefinitionError(loader.problems)
    return Process(
        name=process_name,
        states={name: state for name, (state, _, _) in loader.collected.states.items()},
        events={name: event for name, (event, _, _) in loader.collected.events.items()},
        transitions=tuple(transition for transition, _, _ in loader.collected.transitions),
        files=tuple(loader.collected.files),
    )


def main_process_files(directory: Path) -> list[Path]:
    """Files directly in `directory` that declare a main process."""
    found = []
    for path in sorted(directory.glob("*.xml")):
        try:
            root = SafeET.parse(path, forbid_dtd=True).getroot()
        except (ParseError, DefusedXmlException, OSError, LookupError):
            continue  # not a process file; `oms process check` says why
        if any(_flag(p.get("main")) for p in _children(root, "process")):
            found.append(path)
    return found
