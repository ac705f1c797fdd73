"""Applies an event to the items of one order: pure planning, no I/O.

For each item the transitions leaving its state on the event are tried: a transition whose
condition holds is taken before an unconditional one (Spryker's rule; among several, the first in
document order); the event's command runs once per transition taken, for all the items taking it;
a command that fails leaves those items in their source state. Entering a state with an `onEnter`
event fires that event at once, and so on. The plan lists every move, the final state per item and
the timeouts to record; the caller writes it with a handful of set-based statements.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from schemas.envelope import Event
from services.order_state.domain.process.model import Process, Transition
from services.order_state.domain.process.plugins import CommandCall, ItemFacts, OrderFacts, PluginRegistry

log = logging.getLogger(__name__)

MAX_CHAIN = 32


@dataclass(frozen=True)
class Move:
    item_ids: Sequence[int]
    source: str
    target: str
    event: str | None


@dataclass(frozen=True)
class Refusal:
    item_id: int
    state: str
    reason: str


@dataclass(frozen=True)
class CommandRun:
    command: str
    event: str | None
    source: str
    target: str
    item_ids: list[int]
    error: str | None = None


@dataclass(frozen=True)
class Timeout:
    state: str
    event: str
    due_at: datetime
    item_ids: Sequence[int]


@dataclass
class Plan:
    moves: list[Move] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    commands: list[CommandRun] = field(default_factory=list)
    emitted: list[Event] = field(default_factory=list)
    final_states: dict[int, str] = field(default_factory=dict)
    original_states: dict[int, str] = field(default_factory=dict)
    timeouts: list[Timeout] = field(default_factory=list)
    condition_checks: list[str] = field(default_factory=list)  # states entered that have eventless transitions
    _changed: dict[int, str] | None = field(default=None, repr=False, compare=False)
    _state_changes: dict[tuple[str, str], Sequence[int]] | None = field(default=None, repr=False, compare=False)

    @property
    def changed(self) -> dict[int, str]:
        """Items whose state differs now, with their new state (computed once, when the plan is complete)."""
        if self._changed is None:
            original = self.original_states
            self._changed = {item: state for item, state in self.final_states.items() if state != original[item]}
        return self._changed

    def state_changes(self) -> dict[tuple[str, str], Sequence[int]]:
        """The changed items grouped by (from state, to state), each group's ids in the order they were planned."""
        if self._state_changes is None:
            groups: dict[tuple[str, str], list[int]] = defaultdict(list)
            original = self.original_states
            for item_id, state in self.changed.items():
                groups[(original[item_id], state)].append(item_id)
            self._state_changes = dict(groups)
        return self._state_changes

    @property
    def failed(self) -> list[CommandRun]:
        return [run for run in self.commands if run.error is not None]

    def refusals(self) -> list[Refusal]:
        """Every item the event did not move as asked: refused, or left behind by a failing command."""
        return self.refused + [
            Refusal(item_id, run.source, f"command {run.command} failed: {run.error}")
            for run in self.failed
            for item_id in run.item_ids
        ]


class Engine:
    def __init__(self, process: Process, plugins: PluginRegistry) -> None:
        self.process = process
        self.plugins = plugins

    def choose(self, transitions: tuple[Transition, ...], order: OrderFacts, item: ItemFacts) -> Transition | None:
        for transition in transitions:
            if transition.condition is not None and self.plugins.conditions[transition.condition](order, item):
                return transition
        return next((t for t in transitions if t.condition is None), None)

    def apply(
        self, order: OrderFacts, items: list[ItemFacts], event: str | None, now: datetime, *, refuse: bool = True
    ) -> Plan:
        """Fire `event` (None: the transitions without an event) on `items`, then the onEnter chain.

        Items travel in groups that share a state, so a group that needs no condition moves as one list,
        without a Python object per item: 100,000 items cost a few list operations per transition."""
        plan = Plan()
        plan.original_states = {item.id: item.state for item in items}
        final: dict[int, str] = dict(plan.original_states)
        # One round fires one event per group of items; onEnter events make the next round.
        round_: dict[tuple[str | None, str], list[ItemFacts]] = defaultdict(list)
        for item in items:
            round_[(event, item.state)].append(item)
        depth = 0
        first = True
        while round_ and depth < MAX_CHAIN:
            entered: dict[str, list[ItemFacts]] = defaultdict(list)
            for (name, state), group in round_.items():
                for target, moved in self._fire(plan, order, group, name, state, now, refuse=refuse and first):
                    entered[target].extend(moved)
            round_ = defaultdict(list)
            for state, group in entered.items():
                final.update(dict.fromkeys((item.id for item in group), state))
                follow = self.process.on_enter_event(state)
                if follow is not None:
                    round_[(follow, state)].extend(group)
            depth += 1
            first = False
        if round_:
            log.error("process %s: onEnter chain longer than %d events; stopped", self.process.name, MAX_CHAIN)
        plan.final_states = final
        self._timeouts(plan, order, now)
        return plan

    def _enter_item_by_item(self, order: OrderFacts, items: list[ItemFacts], state: str, now: datetime) -> Plan:
        """`enter_new` through `apply`, for onEnter chains that run commands or ask conditions about items."""
        follow = self.process.on_enter_event(state)
        plan = (
            self.apply(order, items, follow, now, refuse=False)
            if follow
            else Plan(
                original_states={item.id: item.state for item in items},
                final_states={item.id: item.state for item in items},
            )
        )
        stayed = [item_id for item_id, final in plan.final_states.items() if final == state]
        if stayed:
            self._entered(plan, order, state, stayed, now)
        return plan

    def enter_new(
        self,
        order: OrderFacts,
        ids: Sequence[int],
        sample: ItemFacts,
        items: Callable[[], list[ItemFacts]],
        now: datetime,
    ) -> Plan:
        """Items just created (`ids`, all in `sample`'s state, the initial one) have entered it: fire its onEnter
        event if it has one, and record the timeouts of the state they end up in, the initial one included.
        `items` builds their facts only when the onEnter chain needs them item by item (placement: the shipped
        processes never do)."""
        plan = self._enter_together(order, ids, sample, now)
        return plan if plan is not None else self._enter_item_by_item(order, items(), sample.state, now)

    def _enter_together(self, order: OrderFacts, ids: Sequence[int], sample: ItemFacts, now: datetime) -> Plan | None:
        """`enter_new` when the whole onEnter chain moves the items (`ids`, all in `sample`'s state) as one group:
        no command runs on the way and every condition asked is about the order only (how every order placed
        starts in the shipped processes). The same plan as `apply` would make, without its bookkeeping per
        item; None when the chain needs that bookkeeping."""
        process, order_level = self.process, self.plugins.order_level
        state = sample.state
        moves: list[Move] = []
        current = state
        for _ in range(MAX_CHAIN):
            event = process.on_enter_event(current)
            if event is None:
                break
            transitions = process.transitions_on(current, event)
            definition = process.events.get(event)
            if (
                definition is None
                or definition.command is not None
                or any(t.condition is not None and t.condition not in order_level for t in transitions)
            ):
                return None
            item = sample if sample.state == current else sample._replace(state=current)  # _replace costs 2 us
            chosen = self.choose(transitions, order, item) if transitions else None
            if chosen is None:  # nothing leaves this state on its onEnter event: the items stay
                break
            moves.append(Move(ids, chosen.source, chosen.target, event))
            current = chosen.target
        else:
            return None  # a chain this long is reported by apply()
        final = dict.fromkeys(ids, current)
        plan = Plan(
            moves=moves,
            original_states=dict.fromkeys(ids, state),
            final_states=final,
            _changed=final.copy() if current != state else {},
            _state_changes={(state, current): ids} if current != state else {},
        )
        self._entered(plan, order, current, ids, now)
        return plan

    def _fire(
        self,
        plan: Plan,
        order: OrderFacts,
        group: list[ItemFacts],
        event: str | None,
        state: str,
        now: datetime,
        *,
        refuse: bool,
    ) -> list[tuple[str, list[ItemFacts]]]:
        """Fire one event on a group of items that are all in `state` (their own `.state` may be stale)."""
        if event is None:
            transitions = self.process.eventless(state)
        else:
            transitions = self.process.transitions_on(state, event)
        if not transitions:
            if refuse:
                reason = (
                    f'item is in state "{state}", which has no transition on event "{event}"'
                    if state in self.process.states
                    else f'item is in state "{state}", which process {self.process.name} does not know'
                )
                plan.refused.extend(Refusal(item.id, state, reason) for item in group)
            return []
        by_transition: dict[Transition, list[ItemFacts]] = defaultdict(list)
        unanswered: list[ItemFacts] = []  # no condition holds for these
        order_level = self.plugins.order_level
        if all(t.condition is None for t in transitions):
            by_transition[transitions[0]] = group
        elif all(t.condition is None or t.condition in order_level for t in transitions):
            # Conditions about the order only: one answer for the whole group.
            chosen = self.choose(transitions, order, group[0]._replace(state=state))
            if chosen is None:
                unanswered = group
            else:
                by_transition[chosen] = group
        else:
            for item in group:
                chosen = self.choose(transitions, order, item if item.state == state else item._replace(state=state))
                if chosen is None:
                    unanswered.append(item)
                else:
                    by_transition[chosen].append(item)
        if unanswered and refuse:
            what = f'event "{event}"' if event is not None else "the transitions without an event"
            reason = f'no condition of {what} holds in state "{state}"'
            plan.refused.extend(Refusal(item.id, state, reason) for item in unanswered)
        moved: list[tuple[str, list[ItemFacts]]] = []
        command = self.process.events[event].command if event is not None else None
        for transition, takers in by_transition.items():
            ids = [item.id for item in takers]
            if command is not None:
                call = CommandCall(order, event or "", transition.source, transition.target, ids)
                try:
                    self.plugins.commands[command](call)
                except Exception as exc:
                    log.warning(
                        "command %s failed for %d items of %s: %s", command, len(ids), order.order_reference, exc
                    )
                    plan.commands.append(
                        CommandRun(
                            command, event, transition.source, transition.target, ids, f"{type(exc).__name__}: {exc}"
                        )
                    )
                    continue
                plan.commands.append(CommandRun(command, event, transition.source, transition.target, ids))
                plan.emitted.extend(call.emitted)
            plan.moves.append(Move(ids, transition.source, transition.target, event))
            moved.append((transition.target, takers))
        return moved

    def _timeouts(self, plan: Plan, order: OrderFacts, now: datetime) -> None:
        entered: dict[str, list[int]] = defaultdict(list)
        for item_id, state in plan.changed.items():
            entered[state].append(item_id)
        for state, ids in entered.items():
            self._entered(plan, order, state, ids, now)

    def _entered(self, plan: Plan, order: OrderFacts, state: str, ids: Sequence[int], now: datetime) -> None:
        for event in self.process.timeout_events(state):
            plan.timeouts.append(Timeout(state, event.name, self.due_at(order, event.name, now), ids))
        if state in self.process.states_with_eventless_transitions:
            plan.condition_checks.append(state)

    def due_at(self, order: OrderFacts, event: str, entered_at: datetime) -> datetime:
        definition = self.process.events[event]
        if definition.timeout_processor is not None:
            processor = self.plugins.timeout_processors[definition.timeout_processor]
            return processor(order, definition.timeout, entered_at)
        assert definition.timeout is not None
        return entered_at + definition.timeout
