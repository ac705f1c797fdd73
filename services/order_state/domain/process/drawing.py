"""A process as a Graphviz DOT graph: states as nodes, transitions as edges, the happy path highlighted.

Pure text: rendering the DOT source to SVG or PNG is the caller's business (`oms process draw`).
"""

from __future__ import annotations

from datetime import timedelta

import graphviz

from services.order_state.domain.process.model import EventDefinition, Process, State, Transition

HAPPY_COLOUR = "#1b7f3b"
HAPPY_FILL = "#e3f4e8"
OTHER_COLOUR = "#555555"
TIMEOUT_SYMBOL = "⏱"

_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def describe_timeout(timeout: timedelta) -> str:
    """A timeout as a process file would write it: "30 minutes", "1 hour", "1 day 12 hours"."""
    remaining = int(timeout.total_seconds())
    parts = []
    for unit, seconds in _UNITS:
        count, remaining = divmod(remaining, seconds)
        if count:
            parts.append(f"{count} {unit}{'' if count == 1 else 's'}")
    return " ".join(parts) or "0 seconds"


def happy_states(process: Process) -> set[str]:
    """The states on the happy path: both ends of every transition marked `happy="true"`."""
    return {name for transition in process.happy_path() for name in (transition.source, transition.target)}


def state_label(state: State) -> list[str]:
    """The lines a state's node shows: its name, its flags, whether it reserves stock."""
    lines = [state.name]
    if state.flags:
        lines.append(", ".join(sorted(state.flags)))
    if state.reserved:
        lines.append("(reserved)")
    return lines


def event_markers(event: EventDefinition, timeout_symbol: str = TIMEOUT_SYMBOL) -> list[str]:
    """How an event fires: "manual", "onEnter", "⏱ 30 minutes", "⏱ 1 hour (OmsTimeout/Initiation)"."""
    markers = []
    if event.manual:
        markers.append("manual")
    if event.on_enter:
        markers.append("onEnter")
    if event.has_timeout:
        timeout = describe_timeout(event.timeout) if event.timeout is not None else ""
        processor = f"({event.timeout_processor})" if event.timeout_processor else ""
        markers.append(" ".join(part for part in (timeout_symbol, timeout, processor) if part))
    return markers


def transition_label(process: Process, transition: Transition, timeout_symbol: str = TIMEOUT_SYMBOL) -> list[str]:
    """The lines a transition's edge shows: event, its kind (manual, onEnter, timeout), command, [condition]."""
    if transition.event is None:
        lines = ["(condition check)"]
    else:
        lines = [transition.event]
        event = process.events.get(transition.event)
        if event is not None:
            markers = event_markers(event, timeout_symbol)
            if markers:
                lines.append(", ".join(markers))
            if event.command:
                lines.append(f"command: {event.command}")
    if transition.condition:
        lines.append(f"[{transition.condition}]")
    return lines


def _text(lines: list[str]) -> str:
    """Lines as one DOT label: backslashes kept literal, never taken for an HTML label."""
    return graphviz.nohtml("\\n".join(line.replace("\\", "\\\\") for line in lines))


def process_to_dot(process: Process, *, timeout_symbol: str = TIMEOUT_SYMBOL) -> str:
    """The DOT source of `process`; the happy path's edges and states are bold and green.

    `timeout_symbol` marks timeout events; a renderer whose fonts lack "⏱" may be given a word instead."""
    legend = ["green: happy path", "double border: reserved"]
    if timeout_symbol != "timeout":
        legend.append(f"{timeout_symbol} timeout")
    graph = graphviz.Digraph(
        name=process.name,
        graph_attr={
            "label": _text([process.name, ", ".join(legend)]),
            "labelloc": "t",
            "fontname": "Helvetica",
            "rankdir": "TB",
        },
        node_attr={"shape": "box", "style": "rounded", "fontname": "Helvetica", "fontsize": "11"},
        edge_attr={"fontname": "Helvetica", "fontsize": "9", "color": OTHER_COLOUR},
    )
    ids = {name: f"s{index}" for index, name in enumerate(process.states)}
    on_happy_path = happy_states(process)

    graph.node("start", label="", shape="point", width="0.15")
    if process.initial_state in ids:
        graph.edge("start", ids[process.initial_state])

    for name, state in process.states.items():
        attributes = {"label": _text(state_label(state))}
        if state.reserved:
            attributes["peripheries"] = "2"
        if name in on_happy_path:
            attributes.update(
                {
                    "class": "happy",
                    "style": "rounded,filled,bold",
                    "color": HAPPY_COLOUR,
                    "fillcolor": HAPPY_FILL,
                    "penwidth": "2",
                }
            )
        graph.node(ids[name], **attributes)

    for transition in process.transitions:
        attributes = {"label": _text(transition_label(process, transition, timeout_symbol))}
        if transition.happy:
            attributes.update(
                {"class": "happy", "style": "bold", "color": HAPPY_COLOUR, "fontcolor": HAPPY_COLOUR, "penwidth": "2.5"}
            )
        elif transition.event is None:
            attributes["style"] = "dashed"
        graph.edge(ids[transition.source], ids[transition.target], **attributes)
    return graph.source
