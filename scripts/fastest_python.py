"""Prints the path of the fastest Python 3.11+ on this machine that can make a virtual environment.

scripts/venv.sh asks this when it creates .venv and PYTHON is not set. The same CPython version runs the
services' own Python code up to 1.7 times faster when built with profile-guided and link-time optimisation
(as distributions build theirs) than when built without (as pyenv does by default): on the reference
machine, Debian's /usr/bin/python3.11 placed and relayed orders with 15% less CPU than pyenv's 3.11.7,
which came first on PATH. Build flags do not say reliably which one that is, so each candidate times a
short piece of work of the kind the services do (dicts, strings, small objects), in rounds, and the
fastest is taken.

Runs on any Python 3: the first `python3` found, whatever its version, may be the one asking.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

CANDIDATES = (
    "python3",
    "python3.14",
    "python3.13",
    "python3.12",
    "python3.11",
    "/usr/bin/python3",
    "/usr/local/bin/python3",
)

# Run by each candidate: exits 1 unless it is 3.11+ with venv and ensurepip, else prints its real path.
CHECK = r"""
import os, sys
if sys.version_info < (3, 11):
    sys.exit(1)
import ensurepip, venv  # noqa: F401  (python3 -m venv needs both)
print(os.path.realpath(sys.executable))
"""

# Then timed: the best of 15 runs of some work of the kind the services do (dicts, strings, small objects), in
# microseconds.
PROBE = r"""
import time

class Item:
    __slots__ = ("sku", "quantity")
    def __init__(self, sku, quantity):
        self.sku, self.quantity = sku, quantity

def work():
    lines = {}
    for n in range(2000):
        lines[f"SKU-{n}"] = [n, str(n), {"quantity": n * 2, "ids": (n, n + 1)}]
    total = 0
    for sku, (number, text, line) in lines.items():
        total += number + len(text) + line["quantity"]
    return total + sum(Item(sku, n).quantity for n, sku in enumerate(lines))

times = []
for _ in range(15):
    started = time.perf_counter()
    work()
    times.append(time.perf_counter() - started)
print(round(min(times) * 1e6))
"""

ROUNDS = 7


def run(python: str, code: str) -> str | None:
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def main() -> int:
    pythons: list[str] = []
    for command in CANDIDATES:
        found = shutil.which(command)
        path = run(found, CHECK) if found else None
        if path and path not in pythons:
            pythons.append(path)
    if not pythons:
        return 1
    # Rounds in turn, each one's best kept: the (shared, virtual) machine's speed moves by half from one second
    # to the next, and a slow moment should cost one timing, not the choice.
    best: dict[str, int] = {}
    for _ in range(ROUNDS if len(pythons) > 1 else 0):
        for path in pythons:
            micros = run(path, PROBE)
            if micros is not None:
                best[path] = min(int(micros), best.get(path, int(micros)))
    fastest = min(best, key=best.__getitem__) if best else pythons[0]
    if len(best) > 1:
        others = ", ".join(f"{path} {best[path] / best[fastest]:.2f}x slower" for path in best if path != fastest)
        print(f"using {fastest}, the fastest Python here ({others}); PYTHON=... chooses another", file=sys.stderr)
    print(fastest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
