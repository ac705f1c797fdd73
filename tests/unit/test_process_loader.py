"""Loading Spryker OMS XML processes: the shipped default, the fixtures, every refusal as a user reads it."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from services.order_state.domain.process.loader import ProcessDefinitionError, load_process, main_process_files
from services.order_state.domain.process.model import Transition
from services.order_state.domain.process.plugins import default_registry
from services.order_state.domain.process.timeouts import parse_timeout

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "services/order_state/processes/OmsDefault01.xml"
FIXTURES = ROOT / "tests/fixtures/processes"
INVALID = FIXTURES / "invalid"


def refusal(path: Path | str, **kwargs: object) -> ProcessDefinitionError:
    with pytest.raises(ProcessDefinitionError) as caught:
        load_process(path, **kwargs)  # type: ignore[arg-type]
    return caught.value


def pairs(transitions: list[Transition] | tuple[Transition, ...]) -> list[tuple[str, str, str | None]]:
    return [(t.source, t.target, t.event) for t in transitions]


# --- the shipped default process ------------------------------------------------------------------


def test_default_process_loads_with_its_subprocesses():
    process = load_process(DEFAULT)

    assert process.name == "OmsDefault01"
    assert process.initial_state == "new"
    assert set(process.states) == {
        "new",
        "payment pending",
        "invalid",
        "paid",
        "confirmed",
        "shipped",
        "delivered",
        "closed",
        "cancelled",
        "Invoice - ready",
        "Invoice - requested",
        "Invoice - generated",
        "returned",
        "refunded",
    }
    assert set(process.events) == {
        "authorize",
        "pay",
        "confirm",
        "close cancellation window",
        "ship",
        "deliver",
        "close",
        "cancel",
        "Invoice - request",
        "Invoice - generated",
        "return",
        "refund",
    }
    assert len(process.transitions) == 18
    assert [path.name for path in process.files] == ["OmsDefault01.xml", "Invoice01.xml", "Refund01.xml"]


def test_default_process_prefixes_the_invoice_subprocess_in_source_target_and_event():
    process = load_process(DEFAULT)

    assert Transition("Invoice - ready", "Invoice - requested", "Invoice - request", happy=True) in process.transitions
    assert (
        Transition("Invoice - requested", "Invoice - generated", "Invoice - generated", happy=True)
        in process.transitions
    )
    # The main process targets a state declared in the prefixed subprocess: one namespace.
    assert ("confirmed", "Invoice - ready", "close cancellation window") in pairs(process.transitions)
    # The Refund subprocess has no prefix: its names are used as they are, and it uses main states.
    assert ("delivered", "returned", "return") in pairs(process.transitions)
    assert ("cancelled", "refunded", "refund") in pairs(process.transitions)
    assert "ready" not in process.states and "request" not in process.events


def test_default_process_flags_reserved_states_and_events():
    process = load_process(DEFAULT)

    assert process.state_flags("cancellable") == {"new", "payment pending", "paid", "confirmed"}
    assert process.state_flags("invoiceable") == {"Invoice - generated"}
    assert process.state_flags("exclude from customer") == {"invalid", "cancelled"}
    reserved = {name for name, state in process.states.items() if state.reserved}
    assert reserved == {
        "new",
        "payment pending",
        "paid",
        "confirmed",
        "shipped",
        "Invoice - ready",
        "Invoice - requested",
        "Invoice - generated",
    }
    pay = process.events["pay"]
    assert (pay.manual, pay.on_enter, pay.timeout, pay.command) == (True, False, timedelta(hours=1), "DummyPayment/Pay")
    assert process.events["close cancellation window"].timeout == timedelta(minutes=30)
    assert process.events["close"].timeout == timedelta(days=14)
    assert process.events["Invoice - request"].on_enter
    assert process.events["Invoice - request"].command == "Invoice/Generate"
    assert process.on_enter_event("new") == "authorize"
    assert process.on_enter_event("paid") == "confirm"
    assert process.on_enter_event("Invoice - ready") == "Invoice - request"
    assert process.manual_events("confirmed") == ["cancel"]


def test_default_process_happy_path_runs_from_new_to_closed():
    process = load_process(DEFAULT)

    # Subprocesses are read where <subprocesses> stands, before the main process's own transitions.
    assert pairs(process.happy_path()) == [
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


# --- the fixtures ---------------------------------------------------------------------------------


def test_main_process_files_lists_the_fixture_main_processes():
    assert [path.name for path in main_process_files(FIXTURES)] == ["GiftCardExpress01.xml", "Prepayment01.xml"]


def test_main_process_files_skips_what_it_cannot_read(tmp_path):
    shutil.copy(FIXTURES / "GiftCardExpress01.xml", tmp_path)
    (tmp_path / "Archive.xml").mkdir()

    assert [path.name for path in main_process_files(tmp_path)] == ["GiftCardExpress01.xml"]


def test_prepayment_fixture_prefixes_one_subprocess_and_shares_names_with_the_other():
    process = load_process(FIXTURES / "Prepayment01.xml")

    assert process.name == "Prepayment01"
    assert set(process.states) == {
        "new",
        "cancelled",
        "closed",
        "Payment - waiting",
        "Payment - reminded",
        "Payment - received",
        "Payment - expired",
        "picking",
        "shipped",
        "delivered",
    }
    assert set(process.events) == {
        "start",
        "fulfil",
        "drop expired",
        "close",
        "cancel",
        "Payment - receive",
        "Payment - remind",
        "Payment - expire",
        "ship",
        "deliver",
    }
    assert set(pairs(process.transitions)) == {
        ("new", "Payment - waiting", "start"),
        ("Payment - received", "picking", "fulfil"),
        ("Payment - expired", "cancelled", "drop expired"),
        ("delivered", "closed", "close"),
        ("new", "cancelled", "cancel"),
        ("Payment - waiting", "cancelled", "cancel"),
        ("Payment - reminded", "cancelled", "cancel"),
        ("Payment - waiting", "Payment - received", "Payment - receive"),
        ("Payment - waiting", "Payment - reminded", "Payment - remind"),
        ("Payment - reminded", "Payment - received", "Payment - receive"),
        ("Payment - reminded", "Payment - expired", "Payment - expire"),
        ("picking", "shipped", "ship"),
        ("shipped", "delivered", "deliver"),
        # Declared in the unprefixed subprocess with the main process's event and state.
        ("picking", "cancelled", "cancel"),
    }
    assert len(process.transitions) == 14
    assert [path.name for path in process.files] == ["Prepayment01.xml", "Payment01.xml", "Fulfilment01.xml"]


def test_prepayment_fixture_events_states_and_timeouts():
    process = load_process(FIXTURES / "Prepayment01.xml")

    expire = process.events["Payment - expire"]
    assert (expire.timeout, expire.timeout_processor) == (timedelta(days=7), "OmsTimeout/Initiation")
    remind = process.events["Payment - remind"]
    assert (remind.timeout, remind.command, remind.manual) == (timedelta(days=2), "Oms/SendPaymentReminder", False)
    assert process.events["close"].timeout == timedelta(days=1, hours=12)
    assert process.events["Payment - receive"].manual
    assert process.events["fulfil"].on_enter and process.events["fulfil"].command == "Warehouse/Allocate"
    assert process.states["new"].display == "oms.state.new"
    assert process.states["Payment - waiting"].reserved and process.states["Payment - waiting"].cancellable
    assert not process.states["Payment - received"].cancellable
    assert process.state_flags("exclude from customer") == {"cancelled", "Payment - expired"}
    assert process.states_with_timeouts == {"Payment - waiting", "Payment - reminded", "delivered"}
    assert [event.name for event in process.timeout_events("Payment - reminded")] == ["Payment - expire"]


def test_gift_card_fixture_keeps_document_order_and_eventless_transitions():
    process = load_process(FIXTURES / "GiftCardExpress01.xml")

    assert process.name == "GiftCardExpress01"
    assert len(process.states) == 10 and len(process.transitions) == 12 and len(process.events) == 8
    on_authorize = process.transitions_on("new", "authorize")
    assert [(t.target, t.condition) for t in on_authorize] == [
        ("invalid", None),
        ("authorized", "DummyPayment/IsAuthorized"),
    ]
    assert process.eventless("authorized") == (
        Transition("authorized", "captured", None, condition="DummyPayment/IsPayed", happy=True),
    )
    assert process.states_with_eventless_transitions == {"authorized"}
    capture = process.events["capture timeout"]
    assert (capture.timeout, capture.timeout_processor) == (timedelta(hours=3), "OmsTimeout/Initiation")
    assert process.states["delivered"].flags == {"returnable"}


def test_a_named_process_is_loaded_and_an_unknown_name_is_refused():
    assert load_process(FIXTURES / "Prepayment01.xml", name="Prepayment01").name == "Prepayment01"

    error = refusal(FIXTURES / "Prepayment01.xml", name="Postpayment01")
    path = FIXTURES / "Prepayment01.xml"
    assert str(error) == f'{path}: <statemachine>: no <process name="Postpayment01"> in this file'


def test_plugins_registered_by_the_shop_are_accepted():
    plugins = default_registry().copy()
    plugins.conditions["DummyPayment/IsShippable"] = lambda order, item: True

    process = load_process(INVALID / "UnknownCondition01.xml", plugins=plugins)

    assert process.transitions_on("paid", "ship")[0].condition == "DummyPayment/IsShippable"
    assert "DummyPayment/IsShippable" not in default_registry().conditions


# --- refusals, as the user reads them -------------------------------------------------------------

REFUSALS = [
    pytest.param(
        "UnknownTargetState01.xml",
        '<transition happy="true"/>',
        'target state "shiped" is not declared in any <states>',
        id="transition-to-unknown-state",
    ),
    pytest.param(
        "UnknownCondition01.xml",
        '<transition happy="true" condition="DummyPayment/IsShippable"/>',
        'unknown condition "DummyPayment/IsShippable" (no plugin registered under that name)',
        id="unknown-condition",
    ),
    pytest.param(
        "UnknownCommand01.xml",
        '<event name="ship" manual="true" command="Warehouse/PrintLabel"/>',
        'unknown command "Warehouse/PrintLabel" (no plugin registered under that name)',
        id="unknown-command",
    ),
    pytest.param(
        "DuplicateState01.xml",
        '<state name="shipped"/>',
        f'duplicate state "shipped" (first declared in {INVALID / "InvalidSubprocess/Delivery01.xml"})',
        id="duplicate-state",
    ),
    pytest.param(
        "MissingSubprocess01.xml",
        '<process name="Returns" file="InvalidSubprocess/Returns01.xml" prefix="Return"/>',
        f"subprocess file not found: {INVALID / 'InvalidSubprocess/Returns01.xml'}",
        id="missing-subprocess-file",
    ),
    pytest.param(
        "BadTimeout01.xml",
        '<event name="ship" timeout="half an hour"/>',
        "timeout 'half an hour' is not understood; use e.g. '30 minutes', '1 hour', '15 days'",
        id="timeout-does-not-parse",
    ),
    pytest.param(
        "ExternalEntity01.xml",
        "<!DOCTYPE>",
        "refused: DTDs, entity declarations and external references are not allowed",
        id="external-entity",
    ),
    pytest.param(
        "BillionLaughs01.xml",
        "<!DOCTYPE>",
        "refused: DTDs, entity declarations and external references are not allowed",
        id="billion-laughs",
    ),
    pytest.param(
        "NotWellFormed01.xml",
        "(document)",
        "not well-formed XML: not well-formed (invalid token): line 22",
        id="not-well-formed",
    ),
]


@pytest.mark.parametrize(("file_name", "element", "message"), REFUSALS)
def test_each_invalid_fixture_is_refused_with_file_element_and_problem(file_name, element, message):
    path = INVALID / file_name

    error = refusal(path)

    assert len(error.problems) == 1, error.problems
    (problem,) = error.problems
    assert problem.file == path
    assert problem.element == element
    assert message in problem.message
    assert str(problem).startswith(f"{path}: {element}: ")
    assert str(error) == str(problem)


def test_entities_are_neither_read_nor_expanded():
    for name in ("ExternalEntity01.xml", "BillionLaughs01.xml"):
        error = refusal(INVALID / name)
        assert "root:" not in str(error)
        assert "lollol" not in str(error)


def test_a_missing_file_is_a_problem():
    path = FIXTURES / "DoesNotExist01.xml"

    error = refusal(path)

    assert str(error) == f"{path}: (file): file not found"


def test_a_problem_in_a_subprocess_names_the_subprocess_file(tmp_path):
    (tmp_path / "Sub").mkdir()
    main = tmp_path / "Main01.xml"
    main.write_text(
        """<?xml version="1.0"?>
<statemachine xmlns="spryker:oms-01">
    <process name="Main01" main="true">
        <subprocesses><process>Sub</process></subprocesses>
        <states><state name="new"/></states>
        <transitions>
            <transition><source>new</source><target>Sub - done</target><event>finish</event></transition>
        </transitions>
        <events><event name="finish" onEnter="true"/></events>
    </process>
    <process name="Sub" file="Sub/Sub01.xml" prefix="Sub"/>
</statemachine>
"""
    )
    sub = tmp_path / "Sub/Sub01.xml"
    sub.write_text(
        """<?xml version="1.0"?>
<statemachine xmlns="spryker:oms-01">
    <process name="Sub">
        <states><state name="done"/></states>
        <transitions>
            <transition condition="Sub/IsDone">
                <source>done</source><target>new</target><event>again</event>
            </transition>
        </transitions>
        <events><event name="again" timeout="soon"/></events>
    </process>
</statemachine>
"""
    )

    error = refusal(main)

    assert [str(problem) for problem in error.problems] == [
        f"{sub}: <event name=\"again\" timeout=\"soon\"/>: timeout 'soon' is not understood; use e.g. '30 minutes', "
        "'1 hour', '15 days' (units: second, minute, hour, day, week)",
        f'{sub}: <transition condition="Sub/IsDone"/>: unknown condition "Sub/IsDone" '
        "(no plugin registered under that name)",
    ]


def test_a_prefixed_subprocess_cannot_reach_main_states_without_the_prefix(tmp_path):
    (tmp_path / "Main01.xml").write_text(
        """<statemachine xmlns="spryker:oms-01">
    <process name="Main01" main="true">
        <subprocesses><process>Sub</process></subprocesses>
        <states><state name="new"/><state name="cancelled"/></states>
        <transitions>
            <transition><source>new</source><target>Sub - done</target><event>go</event></transition>
        </transitions>
        <events><event name="go"/></events>
    </process>
    <process name="Sub" file="Sub01.xml" prefix="Sub"/>
</statemachine>"""
    )
    (tmp_path / "Sub01.xml").write_text(
        """<statemachine xmlns="spryker:oms-01">
    <process name="Sub">
        <states><state name="done"/></states>
        <transitions><transition><source>done</source><target>cancelled</target><event>drop</event></transition></transitions>
        <events><event name="drop"/></events>
    </process>
</statemachine>"""
    )

    error = refusal(tmp_path / "Main01.xml")

    assert [problem.message for problem in error.problems] == [
        'target state "Sub - cancelled" is not declared in any <states>'
    ]
    assert error.problems[0].file == tmp_path / "Sub01.xml"


def test_a_file_that_is_no_process_is_refused(tmp_path):
    path = tmp_path / "pom.xml"
    path.write_text('<project xmlns="http://maven.apache.org/POM/4.0.0"/>')

    error = refusal(path)

    assert str(error) == f'{path}: <project>: not an OMS process file: expected <statemachine xmlns="spryker:oms-01">'


def test_a_process_without_the_initial_state_is_refused(tmp_path):
    path = tmp_path / "NoStart01.xml"
    path.write_text(
        """<statemachine xmlns="spryker:oms-01"><process name="NoStart01" main="true">
        <states><state name="open"/></states></process></statemachine>"""
    )

    error = refusal(path)

    assert str(error) == f'{path}: <process name="NoStart01">: no initial state "new"'


def test_a_directory_given_as_process_file_is_a_problem(tmp_path):
    folder = tmp_path / "Folder01.xml"
    folder.mkdir()

    error = refusal(folder)

    assert str(folder) in str(error)


def test_an_unknown_encoding_is_a_problem(tmp_path):
    path = tmp_path / "Encoding01.xml"
    path.write_text('<?xml version="1.0" encoding="x-klingon"?><statemachine xmlns="spryker:oms-01"/>')

    error = refusal(path)

    assert "x-klingon" in str(error)


def test_a_timeout_too_large_is_a_problem(tmp_path):
    path = tmp_path / "Forever01.xml"
    path.write_text(
        """<statemachine xmlns="spryker:oms-01"><process name="Forever01" main="true">
        <states><state name="new"/><state name="done"/></states>
        <transitions><transition><source>new</source><target>done</target><event>wait</event></transition></transitions>
        <events><event name="wait" timeout="99999999999 days"/></events></process></statemachine>"""
    )

    error = refusal(path)

    assert "99999999999 days" in str(error)


# --- timeouts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 hour", timedelta(hours=1)),
        ("30 minute", timedelta(minutes=30)),
        ("30 minutes", timedelta(minutes=30)),
        ("15 days", timedelta(days=15)),
        ("1 day 12 hours", timedelta(days=1, hours=12)),
        ("1 day, 12 hours", timedelta(days=1, hours=12)),
        ("1 day and 12 hours", timedelta(days=1, hours=12)),
        ("2 weeks", timedelta(weeks=2)),
        ("45 seconds", timedelta(seconds=45)),
        ("  1 Hour ", timedelta(hours=1)),
        ("1hour", timedelta(hours=1)),
    ],
)
def test_timeouts_parse(text, expected):
    assert parse_timeout(text) == expected


@pytest.mark.parametrize(
    "text", ["", "   ", "soon", "half an hour", "1.5 hours", "-1 hour", "1 hour later", "1 fortnight", "hour", "1 h"]
)
def test_timeouts_that_do_not_parse_are_refused_with_a_hint(text):
    with pytest.raises(ValueError) as caught:
        parse_timeout(text)

    assert str(caught.value) == (
        f"timeout {text!r} is not understood; use e.g. '30 minutes', '1 hour', '15 days' "
        "(units: second, minute, hour, day, week)"
    )


def test_a_zero_timeout_is_refused():
    with pytest.raises(ValueError, match=r"timeout '0 minutes' must be longer than zero"):
        parse_timeout("0 minutes")


def test_a_timeout_too_large_is_refused():
    with pytest.raises(ValueError, match="99999999999 days"):
        parse_timeout("99999999999 days")
