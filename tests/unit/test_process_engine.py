"""The state machine engine on the default process and the fixtures, with made-up order and item facts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

from services.order_state.domain.process.engine import CommandRun, Engine, Move, Plan, Refusal, Timeout
from services.order_state.domain.process.loader import load_process
from services.order_state.domain.process.model import Process
from services.order_state.domain.process.plugins import (
    CommandCall,
    CommandFailed,
    ItemFacts,
    OrderFacts,
    PluginRegistry,
    default_registry,
)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "services/order_state/processes/OmsDefault01.xml"
FIXTURES = ROOT / "tests/fixtures/processes"

PLACED = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
NOW = PLACED + timedelta(minutes=5)


@pytest.fixture(scope="module")
def default_process() -> Process:
    return load_process(DEFAULT)


@pytest.fixture(scope="module")
def prepayment() -> Process:
    return load_process(FIXTURES / "Prepayment01.xml")


@pytest.fixture(scope="module")
def gift_cards() -> Process:
    return load_process(FIXTURES / "GiftCardExpress01.xml")


def order(payment_method: str = "dummyPaymentInvoice", process_name: str = "OmsDefault01") -> OrderFacts:
    return OrderFacts(
        order_id=7,
        order_reference="DE--1007",
        custom_order_reference="PO-4711",
        store="DE",
        process_name=process_name,
        payment_method=payment_method,
        currency="EUR",
        grand_total=12_990,
        placed_at=PLACED,
    )


def items(state: str, *ids: int, sku: str = "SKU-1") -> list[ItemFacts]:
    return [ItemFacts(id=item_id, sku=sku, quantity=1, state=state) for item_id in ids or (1, 2)]


def apply(
    process: Process,
    event: str | None,
    given: list[ItemFacts],
    *,
    facts: OrderFacts | None = None,
    plugins: PluginRegistry | None = None,
    now: datetime = NOW,
    refuse: bool = True,
) -> Plan:
    return Engine(process, plugins or default_registry()).apply(facts or order(), given, event, now, refuse=refuse)


def failing(message: str) -> object:
    def command(call: CommandCall) -> None:
        raise CommandFailed(message)

    return command


# --- the default process, step by step along the happy path ---------------------------------------


def test_authorize_moves_new_items_to_payment_pending_and_plans_the_pay_timeout(default_process):
    plan = apply(default_process, "authorize", items("new"))

    assert plan.moves == [Move([1, 2], "new", "payment pending", "authorize")]
    assert plan.final_states == {1: "payment pending", 2: "payment pending"}
    assert plan.changed == {1: "payment pending", 2: "payment pending"}
    assert plan.timeouts == [Timeout("payment pending", "pay", NOW + timedelta(hours=1), [1, 2])]
    assert plan.refused == [] and plan.commands == [] and plan.emitted == []


def test_new_items_entering_the_process_take_the_onenter_authorize(default_process):
    plan = Engine(default_process, default_registry()).enter_new(
        order(), [1, 2], items("new", 1)[0], partial(items, "new"), NOW
    )

    assert plan.final_states == {1: "payment pending", 2: "payment pending"}
    assert plan.timeouts == [Timeout("payment pending", "pay", NOW + timedelta(hours=1), [1, 2])]


def test_declined_authorization_takes_the_unconditional_transition_to_invalid(default_process):
    plan = apply(default_process, "authorize", items("new"), facts=order("dummyPaymentDeclined"))

    assert plan.moves == [Move([1, 2], "new", "invalid", "authorize")]
    assert plan.timeouts == []


def test_pay_runs_the_command_and_the_onenter_chain_ends_in_confirmed(default_process):
    plan = apply(default_process, "pay", items("payment pending"))

    assert plan.moves == [
        Move([1, 2], "payment pending", "paid", "pay"),
        Move([1, 2], "paid", "confirmed", "confirm"),
    ]
    assert plan.commands == [
        CommandRun("DummyPayment/Pay", "pay", "payment pending", "paid", [1, 2]),
        CommandRun("Oms/SendOrderConfirmation", "confirm", "paid", "confirmed", [1, 2]),
    ]
    assert plan.final_states == {1: "confirmed", 2: "confirmed"}
    assert plan.original_states == {1: "payment pending", 2: "payment pending"}
    # Only the state the items end in gets timeouts: the 30-minute cancellation window.
    assert plan.timeouts == [Timeout("confirmed", "close cancellation window", NOW + timedelta(minutes=30), [1, 2])]
    assert plan.failed == []


def test_unpaid_order_falls_back_to_cancelled(default_process):
    plan = apply(default_process, "pay", items("payment pending"), facts=order("dummyPaymentUnpaid"))

    assert plan.moves == [Move([1, 2], "payment pending", "cancelled", "pay")]
    assert plan.final_states == {1: "cancelled", 2: "cancelled"}


def test_closing_the_cancellation_window_requests_the_invoice(default_process):
    plan = apply(default_process, "close cancellation window", items("confirmed", 5, 3))

    assert plan.moves == [
        Move([5, 3], "confirmed", "Invoice - ready", "close cancellation window"),
        Move([5, 3], "Invoice - ready", "Invoice - requested", "Invoice - request"),
    ]
    assert plan.commands == [
        CommandRun("Invoice/Generate", "Invoice - request", "Invoice - ready", "Invoice - requested", [5, 3])
    ]
    assert plan.final_states == {5: "Invoice - requested", 3: "Invoice - requested"}
    (event,) = plan.emitted
    assert event.event_type == "invoice.generation_requested"
    assert event.order_reference == "DE--1007"
    assert event.custom_order_reference == "PO-4711"
    assert event.item_ids == [3, 5]
    assert plan.timeouts == []


def test_the_happy_path_walks_from_new_to_closed(default_process):
    engine = Engine(default_process, default_registry())
    current = items("new")
    visited = []
    timeouts = []
    for step, event in enumerate(
        ["authorize", "pay", "close cancellation window", "Invoice - generated", "ship", "deliver", "close"]
    ):
        plan = engine.apply(order(), current, event, NOW + timedelta(hours=step))
        assert plan.refused == [] and plan.failed == [], (event, plan)
        current = [ItemFacts(item.id, item.sku, item.quantity, plan.final_states[item.id]) for item in current]
        visited.append(current[0].state)
        timeouts += [(timeout.state, timeout.event, timeout.due_at - NOW) for timeout in plan.timeouts]

    assert visited == [
        "payment pending",
        "confirmed",
        "Invoice - requested",
        "Invoice - generated",
        "shipped",
        "delivered",
        "closed",
    ]
    assert timeouts == [
        ("payment pending", "pay", timedelta(hours=1)),
        ("confirmed", "close cancellation window", timedelta(hours=1, minutes=30)),
        ("delivered", "close", timedelta(hours=5, days=14)),
    ]


def test_return_and_refund_after_delivery(default_process):
    returned = apply(default_process, "return", items("delivered"))
    refunded = apply(default_process, "refund", items("returned"))

    assert returned.final_states == {1: "returned", 2: "returned"}
    assert refunded.final_states == {1: "refunded", 2: "refunded"}
    assert refunded.commands == [CommandRun("DummyPayment/Refund", "refund", "returned", "refunded", [1, 2])]


# --- cancellation and refusals ---------------------------------------------------------------------


@pytest.mark.parametrize("state", ["new", "payment pending", "paid", "confirmed"])
def test_every_cancellable_state_can_be_cancelled(default_process, state):
    plan = apply(default_process, "cancel", items(state))

    assert plan.moves == [Move([1, 2], state, "cancelled", "cancel")]
    assert plan.refused == []
    assert state in default_process.state_flags("cancellable")


def test_cancelled_items_can_be_refunded(default_process):
    plan = apply(default_process, "refund", items("cancelled"))

    assert plan.final_states == {1: "refunded", 2: "refunded"}


def test_items_that_cannot_take_the_event_are_refused_by_item_with_the_reason(default_process):
    given = items("confirmed", 1, 2) + items("shipped", 3) + items("Invoice - ready", 4)

    plan = apply(default_process, "cancel", given)

    assert plan.moves == [Move([1, 2], "confirmed", "cancelled", "cancel")]
    assert plan.refused == [
        Refusal(3, "shipped", 'item is in state "shipped", which has no transition on event "cancel"'),
        Refusal(4, "Invoice - ready", 'item is in state "Invoice - ready", which has no transition on event "cancel"'),
    ]
    assert plan.final_states == {1: "cancelled", 2: "cancelled", 3: "shipped", 4: "Invoice - ready"}
    assert plan.changed == {1: "cancelled", 2: "cancelled"}


def test_an_item_in_a_state_the_process_does_not_know_is_refused(default_process):
    plan = apply(default_process, "cancel", items("lost in transit", 9))

    assert plan.refused == [
        Refusal(9, "lost in transit", 'item is in state "lost in transit", which process OmsDefault01 does not know')
    ]
    assert plan.moves == [] and plan.final_states == {9: "lost in transit"}


def test_an_unknown_event_is_refused(default_process):
    plan = apply(default_process, "teleport", items("new", 1))

    assert plan.refused == [Refusal(1, "new", 'item is in state "new", which has no transition on event "teleport"')]


def test_refusals_can_be_switched_off_for_facts_from_other_services(default_process):
    plan = apply(default_process, "Invoice - generated", items("shipped"), refuse=False)

    assert plan.refused == [] and plan.moves == [] and plan.changed == {}


# --- failing commands ------------------------------------------------------------------------------


def test_a_failing_command_leaves_the_items_in_their_source_state(default_process):
    plugins = default_registry().copy()
    plugins.commands["DummyPayment/Pay"] = failing("card expired")

    plan = apply(default_process, "pay", items("payment pending"), plugins=plugins)

    assert plan.moves == []
    assert plan.final_states == {1: "payment pending", 2: "payment pending"}
    assert plan.changed == {}
    assert plan.failed == [
        CommandRun("DummyPayment/Pay", "pay", "payment pending", "paid", [1, 2], "CommandFailed: card expired")
    ]
    assert plan.timeouts == []
    assert default_registry().commands["DummyPayment/Pay"] is not plugins.commands["DummyPayment/Pay"]


def test_a_failing_command_in_the_onenter_chain_stops_the_chain_there(prepayment):
    plugins = default_registry().copy()
    plugins.commands["Warehouse/Allocate"] = failing("out of stock")

    plan = apply(prepayment, "Payment - receive", items("Payment - waiting"), plugins=plugins)

    assert plan.moves == [Move([1, 2], "Payment - waiting", "Payment - received", "Payment - receive")]
    assert plan.final_states == {1: "Payment - received", 2: "Payment - received"}
    assert plan.failed == [
        CommandRun(
            "Warehouse/Allocate", "fulfil", "Payment - received", "picking", [1, 2], "CommandFailed: out of stock"
        )
    ]
    assert [run.command for run in plan.commands if run.error is None] == ["DummyPayment/Pay"]


def test_events_of_a_failing_command_are_not_published(default_process):
    plugins = default_registry().copy()
    generate = plugins.commands["Invoice/Generate"]

    def generate_then_fail(call: CommandCall) -> None:
        generate(call)
        raise RuntimeError("invoicing database is read-only")

    plugins.commands["Invoice/Generate"] = generate_then_fail

    plan = apply(default_process, "close cancellation window", items("confirmed"), plugins=plugins)

    assert plan.emitted == []
    assert plan.final_states == {1: "Invoice - ready", 2: "Invoice - ready"}
    assert plan.failed[0].error == "RuntimeError: invoicing database is read-only"


# --- conditions: conditional before unconditional ---------------------------------------------------


def test_a_holding_condition_wins_over_an_earlier_unconditional_transition(gift_cards):
    # In GiftCardExpress01 the unconditional "new -> invalid" comes first in document order.
    plan = apply(gift_cards, "authorize", items("new"), facts=order(process_name="GiftCardExpress01"))

    assert plan.moves == [Move([1, 2], "new", "authorized", "authorize")]
    # "capture timeout" is counted from placement (OmsTimeout/Initiation), not from now.
    assert plan.timeouts == [Timeout("authorized", "capture timeout", PLACED + timedelta(hours=3), [1, 2])]


def test_the_unconditional_transition_is_taken_when_no_condition_holds(gift_cards):
    facts = order("dummyPaymentDeclined", process_name="GiftCardExpress01")

    plan = apply(gift_cards, "authorize", items("new"), facts=facts)

    assert plan.moves == [Move([1, 2], "new", "invalid", "authorize")]


def test_the_periodic_check_takes_eventless_transitions_and_splits_items_by_condition(gift_cards):
    given = items("authorized", 1, sku="GIFT-50") + items("authorized", 2, sku="SHIRT-M")

    plan = apply(gift_cards, None, given, facts=order(process_name="GiftCardExpress01"))

    assert plan.moves == [
        Move([1, 2], "authorized", "captured", None),
        Move([1], "captured", "gift card created", "route"),
        Move([2], "captured", "waiting for shipment", "route"),
        Move([1], "gift card created", "delivered", "send gift card"),
    ]
    assert plan.final_states == {1: "delivered", 2: "waiting for shipment"}
    assert plan.commands == [
        CommandRun("GiftCardMailConnector/ShipGiftCard", "send gift card", "gift card created", "delivered", [1])
    ]
    assert plan.timeouts == [Timeout("delivered", "close", NOW + timedelta(days=15), [1])]


def test_the_periodic_check_leaves_items_whose_condition_does_not_hold(gift_cards):
    facts = order("dummyPaymentUnpaid", process_name="GiftCardExpress01")

    plan = apply(gift_cards, None, items("authorized"), facts=facts, refuse=False)

    assert plan.moves == [] and plan.refused == [] and plan.changed == {}


# --- timeouts on the prepayment fixture ----------------------------------------------------------


def test_entering_a_state_with_timeouts_plans_one_due_time_per_event(prepayment):
    plan = apply(prepayment, "start", items("new"), facts=order(process_name="Prepayment01"))

    assert plan.final_states == {1: "Payment - waiting", 2: "Payment - waiting"}
    assert plan.timeouts == [Timeout("Payment - waiting", "Payment - remind", NOW + timedelta(days=2), [1, 2])]


def test_the_reminder_timeout_plans_expiry_from_the_placement(prepayment):
    later = PLACED + timedelta(days=2, minutes=1)

    plan = apply(prepayment, "Payment - remind", items("Payment - waiting"), now=later)

    assert plan.commands == [
        CommandRun("Oms/SendPaymentReminder", "Payment - remind", "Payment - waiting", "Payment - reminded", [1, 2])
    ]
    assert plan.timeouts == [Timeout("Payment - reminded", "Payment - expire", PLACED + timedelta(days=7), [1, 2])]


def test_expiry_chains_into_cancelled(prepayment):
    plan = apply(prepayment, "Payment - expire", items("Payment - reminded"))

    assert plan.moves == [
        Move([1, 2], "Payment - reminded", "Payment - expired", "Payment - expire"),
        Move([1, 2], "Payment - expired", "cancelled", "drop expired"),
    ]


def test_payment_received_chains_into_picking_and_delivery_plans_closing(prepayment):
    received = apply(prepayment, "Payment - receive", items("Payment - reminded"))
    delivered = apply(prepayment, "deliver", items("shipped"))
    cancelled = apply(prepayment, "cancel", items("picking"))

    assert received.final_states == {1: "picking", 2: "picking"}
    assert [run.command for run in received.commands] == ["DummyPayment/Pay", "Warehouse/Allocate"]
    assert delivered.timeouts == [Timeout("delivered", "close", NOW + timedelta(days=1, hours=12), [1, 2])]
    assert cancelled.final_states == {1: "cancelled", 2: "cancelled"}


# --- entering as one group (the way every placed order starts) --------------------------------------

PROCESS_FILES = sorted([*DEFAULT.parent.glob("*.xml"), *FIXTURES.glob("*.xml")])


@pytest.mark.parametrize("path", PROCESS_FILES, ids=lambda path: path.stem)
def test_entering_as_one_group_plans_what_the_item_by_item_way_plans(path, monkeypatch):
    process = load_process(path)
    grouped = 0
    for payment_method in ("dummyPaymentInvoice", "dummyPaymentDeclined", "prepayment", "giftCard"):
        for state in process.states:
            engine = Engine(process, default_registry())
            facts = order(payment_method, process.name)
            enter = partial(engine.enter_new, facts, [1, 2, 3], items(state, 1)[0], partial(items, state, 1, 2, 3))
            fast = enter(NOW)
            grouped += engine._enter_together(facts, [1, 2, 3], items(state, 1)[0], NOW) is not None
            with monkeypatch.context() as patched:
                patched.setattr(Engine, "_enter_together", lambda *args: None)
                slow = enter(NOW)
            seen = lambda plan: (  # noqa: E731
                plan.moves,
                plan.refused,
                plan.commands,
                plan.final_states,
                plan.original_states,
                plan.changed,
                plan.state_changes(),
                plan.timeouts,
                plan.condition_checks,
                [type(event) for event in plan.emitted],
            )
            assert seen(fast) == seen(slow), f"{process.name}, {payment_method}, entering {state!r}"
    assert grouped  # the group way is taken somewhere in every process
