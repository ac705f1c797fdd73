"""The cycle collector's passes between batches (services.runtime.garbage)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from services.runtime.garbage import (
    AUTOMATIC_GEN0_THRESHOLD,
    SURVIVORS_BEFORE_PASS,
    collect_between_batches,
    tune_garbage_collector,
)


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycles(count: int) -> weakref.ref[Node]:
    """`count` pairs of objects that refer to each other and to nothing else (garbage only the cycle collector
    frees); returns a weak reference to one of them."""
    first = None
    for _ in range(count):
        a, b = Node(), Node()
        a.other, b.other = b, a
        first = first or weakref.ref(a)
    assert first is not None
    return first


@pytest.fixture
def collector() -> Iterator[None]:
    """The collector as a service has it, without automatic passes getting in the way; restored after."""
    threshold, enabled = gc.get_threshold(), gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
        if enabled:
            gc.enable()
        gc.collect()


def test_tuning_freezes_what_exists_and_moves_automatic_passes_far_out(collector: None) -> None:
    before = gc.get_freeze_count()
    tune_garbage_collector()
    assert gc.get_threshold()[0] == AUTOMATIC_GEN0_THRESHOLD
    assert gc.get_freeze_count() > before


def test_no_pass_while_few_objects_survived(collector: None) -> None:
    garbage = cycles(100)
    assert collect_between_batches() == -1
    assert garbage() is not None  # still waiting for a pass


def test_a_young_pass_frees_cyclic_garbage_once_enough_survived(collector: None) -> None:
    garbage = cycles(SURVIVORS_BEFORE_PASS)  # twice as many objects as needed
    assert collect_between_batches() == 0
    assert garbage() is None
    assert gc.get_count()[0] < SURVIVORS_BEFORE_PASS


def test_objects_freed_by_reference_counting_do_not_count(collector: None) -> None:
    batch = [{"line": n} for n in range(3 * SURVIVORS_BEFORE_PASS)]  # a batch's documents, alive while it runs
    assert gc.get_count()[0] >= 3 * SURVIVORS_BEFORE_PASS
    del batch
    assert collect_between_batches() == -1


def test_older_generations_are_collected_when_due(collector: None) -> None:
    _, middle_threshold, old_threshold = gc.get_threshold()
    for _ in range(middle_threshold):  # each young pass adds one to the middle generation's count
        gc.collect(0)
    garbage = cycles(SURVIVORS_BEFORE_PASS)
    assert collect_between_batches() == 1
    assert garbage() is None
    for _ in range(old_threshold):
        gc.collect(1)
    cycles(SURVIVORS_BEFORE_PASS)
    assert collect_between_batches() == 2
