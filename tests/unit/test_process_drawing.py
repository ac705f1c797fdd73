"""The DOT source of a process: states, events, the happy path, as a reader of the drawing sees them."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from services.order_state.domain.process.drawing import (
    HAPPY_COLOUR,
    describe_timeout,
    happy_states,
    process_to_dot,
)
from services.order_state.domain.process.loader import load_process
from services.order_state.domain.process.model import EventDefinition, Process, State, Transition

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "services/order_state/processes/OmsDefault01.xml"
FIXTURES = ROOT / "tests/fixtures/processes"

_NODE = re.compile(r'^\t(s\d+) \[label=(?:"((?:[^"\\]|\\.)*)"|(\S+?))(?: (.*))?\]$')
_EDGE = re.compile(r'^\t(s\d+) -> (s\d+) \[label="((?:[^"\\]|\\.)*)"(?: (.*))?\]$')


class Drawing:
    """The nodes and edges of a DOT source, by the lines of their labels."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.nodes: dict[str, tuple[list[str], str]] = {}
        ids: dict[str, str] = {}
        for line in source.splitlines():
            node = _NODE.match(line)
            if node:
                label = (node.group(2) if node.group(2) is not None else node.group(3)).split("\\n")
                ids[node.group(1)] = label[0]
                self.nodes[label[0]] = (label, node.group(4) or "")
        self.edges: list[tuple[str, str, list[str], str]] = []
        for line in source.splitlines():
            edge = _EDGE.match(line)
            if edge:
                self.edges.append(
                    (ids[edge.group(1)], ids[edge.group(2)], edge.group(3).split("\\n"), edge.group(4) or "")
                )

    def edge(self, source: str, target: str, event: str) -> tuple[list[str], str]:
        (found,) = [(label, attrs) for s, t, label, attrs in self.edges if (s, t, label[0]) == (source, target, event)]
        return found


@pytest.fixture(scope="module")
def default_drawing() -> Drawing:
    return Drawing(process_to_dot(load_process(DEFAULT)))


def test_every_state_is_a_node_and_every_transition_an_edge(default_drawing):
    process = load_process(DEFAULT)

    assert set(default_drawing.nodes) == set(process.states)
    assert len(default_drawing.edges) == len(process.transitions)
    assert default_drawing.source.startswith("digraph OmsDefault01 {")
    for transition in process.transitions:
        default_drawing.edge(transition.source, transition.target, transition.event)


def test_state_labels_show_flags_and_reserved(default_drawing):
    assert default_drawing.nodes["new"][0] == ["new", "cancellable", "(reserved)"]
    assert default_drawing.nodes["cancelled"][0] == ["cancelled", "exclude from customer"]
    assert default_drawing.nodes["Invoice - generated"][0] == ["Invoice - generated", "invoiceable", "(reserved)"]
    assert default_drawing.nodes["refunded"][0] == ["refunded"]
    assert "peripheries=2" in default_drawing.nodes["paid"][1]
    assert "peripheries" not in default_drawing.nodes["delivered"][1]


def test_edge_labels_show_event_kind_timeout_command_and_condition(default_drawing):
    label, _ = default_drawing.edge("new", "payment pending", "authorize")
    assert label == ["authorize", "onEnter", "[DummyPayment/IsAuthorized]"]
    label, _ = default_drawing.edge("payment pending", "paid", "pay")
    assert label == ["pay", "manual, ⏱ 1 hour", "command: DummyPayment/Pay", "[DummyPayment/IsPayed]"]
    label, _ = default_drawing.edge("confirmed", "Invoice - ready", "close cancellation window")
    assert label == ["close cancellation window", "⏱ 30 minutes"]
    label, _ = default_drawing.edge("Invoice - ready", "Invoice - requested", "Invoice - request")
    assert label == ["Invoice - request", "onEnter", "command: Invoice/Generate"]
    label, _ = default_drawing.edge("confirmed", "cancelled", "cancel")
    assert label == ["cancel", "manual"]


def test_the_happy_path_is_bold_and_green(default_drawing):
    happy = [(s, t, label[0]) for s, t, label, attrs in default_drawing.edges if "class=happy" in attrs]
    assert happy == [
        ("Invoice - ready", "Invoice - requested", "Invoice - request"),
        ("Invoice - requested", "Invoice - generated", "Invoice - generated"),
        ("new", "payment pending", "authorize"),
        ("payment pending", "paid", "pay"),
        ("paid", "confirmed", "confirm"),
        ("confirmed", "Invoice - ready", "close cancellation window"),
        ("Invoice - generated", "shipped", "ship"),
        ("shipped", "delivered", "deliver"),
        ("delivered", "closed", "close"),
    ]
    _, attrs = default_drawing.edge("paid", "confirmed", "confirm")
    assert f'color="{HAPPY_COLOUR}"' in attrs and "style=bold" in attrs
    _, attrs = default_drawing.edge("new", "invalid", "authorize")
    assert "class=happy" not in attrs and HAPPY_COLOUR not in attrs

    on_path = {name for name, (_, attrs) in default_drawing.nodes.items() if "class=happy" in attrs}
    assert on_path == {
        "new",
        "payment pending",
        "paid",
        "confirmed",
        "Invoice - ready",
        "Invoice - requested",
        "Invoice - generated",
        "shipped",
        "delivered",
        "closed",
    }
    assert "filled" in default_drawing.nodes["closed"][1]
    assert "filled" not in default_drawing.nodes["cancelled"][1]
    assert "green: happy path" in default_drawing.source


def test_the_initial_state_has_a_start_marker(default_drawing):
    start = re.search(r"\tstart -> (s\d+)\n", default_drawing.source)
    assert start is not None
    assert re.search(rf'\t{start.group(1)} \[label="new\\n', default_drawing.source)


def test_fixture_drawing_marks_timeout_processors_and_eventless_checks():
    drawing = Drawing(process_to_dot(load_process(FIXTURES / "GiftCardExpress01.xml")))

    label, attrs = drawing.edge("authorized", "captured", "(condition check)")
    assert label == ["(condition check)", "[DummyPayment/IsPayed]"] and "class=happy" in attrs
    label, _ = drawing.edge("authorized", "cancelled", "capture timeout")
    assert label == ["capture timeout", "⏱ 3 hours (OmsTimeout/Initiation)"]
    label, attrs = drawing.edge("captured", "gift card created", "route")
    assert label == ["route", "onEnter", "[GiftCard/IsGiftCard]"] and "class=happy" not in attrs
    assert happy_states(load_process(FIXTURES / "GiftCardExpress01.xml")) == {
        "new",
        "authorized",
        "captured",
        "waiting for shipment",
        "shipped",
        "delivered",
        "closed",
    }


def test_prefixed_subprocess_states_and_a_word_instead_of_the_clock():
    drawing = Drawing(process_to_dot(load_process(FIXTURES / "Prepayment01.xml"), timeout_symbol="timeout"))

    assert {"Payment - waiting", "Payment - reminded", "picking"} <= set(drawing.nodes)
    label, _ = drawing.edge("Payment - reminded", "Payment - expired", "Payment - expire")
    assert label == ["Payment - expire", "timeout 7 days (OmsTimeout/Initiation)"]
    label, _ = drawing.edge("delivered", "closed", "close")
    assert label == ["close", "timeout 1 day 12 hours"]
    assert "⏱" not in drawing.source


def test_names_are_quoted_so_dot_reads_them_literally():
    process = Process(
        name="Odd01",
        states={
            "new": State("new"),
            'say "hi"': State('say "hi"'),
            "<b>bold</b>": State("<b>bold</b>"),
            "back\\slash: x": State("back\\slash: x"),
        },
        events={"go": EventDefinition("go")},
        transitions=(
            Transition("new", 'say "hi"', "go"),
            Transition('say "hi"', "<b>bold</b>", "go"),
            Transition("<b>bold</b>", "back\\slash: x", None),
        ),
    )

    source = process_to_dot(process)

    assert '[label="say \\"hi\\""]' in source
    assert '[label="<b>bold</b>"]' in source  # a quoted string, not an HTML label
    assert '[label="back\\\\slash: x"]' in source
    assert 's2 -> s3 [label="(condition check)" style=dashed]' in source


@pytest.mark.parametrize(
    ("timeout", "text"),
    [
        (timedelta(minutes=30), "30 minutes"),
        (timedelta(hours=1), "1 hour"),
        (timedelta(days=15), "15 days"),
        (timedelta(days=1, hours=12), "1 day 12 hours"),
        (timedelta(weeks=2), "14 days"),
        (timedelta(seconds=90), "1 minute 30 seconds"),
    ],
)
def test_timeouts_are_described_as_a_process_file_writes_them(timeout, text):
    assert describe_timeout(timeout) == text
