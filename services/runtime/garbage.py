"""When a service's Python process looks for reference cycles.

Handlers allocate many short-lived containers (a decoded order is about thirty dicts, each of its items a
row tuple) and almost no reference cycles, which reference counting frees anyway. Python's cycle collector
starts a young-generation pass when the tracked objects allocated since the last pass, minus those freed,
pass a threshold. In the middle of a batch that is exactly when the batch's own objects are all alive: with
a threshold of 50,000, order_state ran about one pass per batch of 1,000 orders, each scanning tens of
thousands of live objects only to promote them, for about 12 % of its CPU (passes timed with gc.callbacks).

So passes run between batches instead (`collect_between_batches`, called by the consumer once a batch is
settled), when the batch's objects are gone and the pass has only the survivors to look at; the automatic
threshold stays as a safety net, far above what a batch keeps alive. What is alive once the service is
built (modules, contracts, processes) is frozen out of every scan.
"""

from __future__ import annotations

import gc

# Automatic young passes only when this many more tracked objects are alive than at the last pass: far
# above the peak of a batch (1,000 ordinary orders keep about 70,000 alive until the batch ends).
AUTOMATIC_GEN0_THRESHOLD = 1_000_000
# Between batches, a young pass once this many objects have survived since the last one: a batch's own
# objects are freed when it ends, so what is counted then is what outlives batches (caches, connections,
# cyclic garbage), and cyclic garbage never piles up beyond about this many objects.
SURVIVORS_BEFORE_PASS = 10_000


def tune_garbage_collector() -> None:
    """Freeze what the service is built of and move young passes to between batches (see above)."""
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(AUTOMATIC_GEN0_THRESHOLD, older, oldest)


def collect_between_batches() -> int:
    """A cycle-collector pass if enough objects have survived since the last one: of the young generation,
    or of an older one when it is due as Python would run it (each generation after `threshold` passes of
    the one below). Returns the generation collected, or -1 for none."""
    young, middle, old = gc.get_count()
    if young < SURVIVORS_BEFORE_PASS:
        return -1
    _, middle_threshold, old_threshold = gc.get_threshold()
    generation = 2 if old >= old_threshold else 1 if middle >= middle_threshold else 0
    gc.collect(generation)
    return generation
