"""A loaded process: states, events and transitions, with the questions the engine asks of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from pathlib import Path

INITIAL_STATE = "new"


@dataclass(frozen=True)
class State:
    name: str
    flags: frozenset[str] = frozenset()
    reserved: bool = False
    display: str | None = None

    @property
    def cancellable(self) -> bool:
        return "cancellable" in self.flags


@dataclass(frozen=True)
class EventDefinition:
    name: str
    manual: bool = False
    on_enter: bool = False
    timeout: timedelta | None = None
    timeout_processor: str | None = None
    command: str | None = None

    @property
    def has_timeout(self) -> bool:
        return self.timeout is not None or self.timeout_processor is not None


@dataclass(frozen=True)
class Transition:
    source: str
    target: str
    event: str | None = None
    condition: str | None = None
    happy: bool = False


@dataclass(frozen=True)
class Process:
    name: str
    states: dict[str, State]
    events: dict[str, EventDefinition]
    transitions: tuple[Transition, ...]
    files: tuple[Path, ...] = field(default=())
    initial_state: str = INITIAL_STATE

    @cached_property
    def _outgoing(self) -> dict[str, tuple[Transition, ...]]:
        outgoing: dict[str, list[Transition]] = {name: [] for name in self.states}
        for transition in self.transitions:
            outgoing[transition.source].append(transition)
        return {name: tuple(items) for name, items in outgoing.items()}

    def outgoing(self, state: str) -> tuple[Transition, ...]:
        return self._outgoing.get(state, ())

    @cached_property
    def _by_state_and_event(self) -> dict[tuple[str, str | None], tuple[Transition, ...]]:
        table: dict[tuple[str, str | None], list[Transition]] = {}
        for transition in self.transitions:
            table.setdefault((transition.source, transition.event), []).append(transition)
        return {key: tuple(items) for key, items in table.items()}

    def transitions_on(self, state: str, event: str) -> tuple[Transition, ...]:
        """Transitions leaving `state` on `event`, in document order: the first whose condition holds wins."""
        return self._by_state_and_event.get((state, event), ())

    def eventless(self, state: str) -> tuple[Transition, ...]:
        return self._by_state_and_event.get((state, None), ())

    def events_from(self, state: str) -> list[str]:
        seen: dict[str, None] = {}
        for transition in self.outgoing(state):
            if transition.event is not None:
                seen.setdefault(transition.event, None)
        return list(seen)

    def manual_events(self, state: str) -> list[str]:
        return [name for name in self.events_from(state) if self.events[name].manual]

    @cached_property
    def _on_enter(self) -> dict[str, str | None]:
        return {
            state: next((name for name in self.events_from(state) if self.events[name].on_enter), None)
            for state in self.states
        }

    def on_enter_event(self, state: str) -> str | None:
        return self._on_enter.get(state)

    @cached_property
    def _timeout_events(self) -> dict[str, list[EventDefinition]]:
        return {
            state: [self.events[name] for name in self.events_from(state) if self.events[name].has_timeout]
            for state in self.states
        }

    def timeout_events(self, state: str) -> list[EventDefinition]:
        return self._timeout_events.get(state, [])

    @cached_property
    def states_with_timeouts(self) -> frozenset[str]:
        return frozenset(name for name in self.states if self.timeout_events(name))

    @cached_property
    def states_with_eventless_transitions(self) -> frozenset[str]:
        return frozenset(name for name in self.states if self.eventless(name))

    def state_flags(self, flag: str) -> frozenset[str]:
        return frozenset(name for name, state in self.states.items() if flag in state.flags)

    def happy_path(self) -> list[Transition]:
        return [transition for transition in self.transitions if transition.happy]
