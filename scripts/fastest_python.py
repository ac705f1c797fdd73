"""Prints the path of the fastest Python 3.11+ on this machine that can make a virtual environment.

scripts/venv.sh asks this when it creates .venv and PYTHON is not set. The same CPython version runs the
services' own Python code up to 1.7 times faster when built with profile-guided and link-time optimisation
(as distributions build theirs) than when built without (as pyenv does by default): on the reference
machine, Debian's /usr/bin/python3.11 placed and relayed orders with 15% less CPU than pyenv's 3.11.7,
which came first on PATH. Build flags do not say reliably which one that is, so each candidate times a
short piece of work of the kind the services do (dicts, strings, objects, JSON) and the fastest is taken.

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

# Run by each candidate: exits 1 unless it is 3.11+ with venv and ensurepip, else prints its real path and
# the best of seven timings of the work, in microseconds.
PROBE = r"""
import json, os, sys, time
if sys.version_info < (3, 11):
    sys.exit(1)
import ensurepip, venv  # noqa: F401  (python3 -m venv needs both)

class Item:
    __slots__ = ("sku", "quantity", "state")
    def __init__(self, sku, quantity, state):
        self.sku, self.quantity, self.state = sku, quantity, state

def work():
    lines = {}
    for n in range(2000):
        lines["SKU-%d" % n] = [n, str(n), {"quantity": n * 2, "ids": (n, n + 1)}]
    total = 0
    for sku, (number, text, line) in lines.items():
        total += number + len(text) + line["quantity"] + Item(sku, number, "new").quantity
    return total + len(json.dumps(list(lines)))

times = []
for _ in range(7):
    started = time.perf_counter()
    work()
    times.append(time.perf_counter() - started)
print(os.path.realpath(sys.executable), round(min(times) * 1e6))
"""


def probe(command: str) -> tuple[str, int] | None:
    found = shutil.which(command)
    if found is None:
        return None
    try:
        done = subprocess.run([found, "-c", PROBE], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    path, micros = done.stdout.split()
    return path, int(micros)


def main() -> int:
    # Rounds in turn, each candidate's best kept: a moment when the (shared) machine is slow then costs one
    # timing, not the choice.
    timings: dict[str, int] = {}
    commands = list(CANDIDATES)
    for _ in range(3):
        for command in list(commands):
            result = probe(command)
            if result is None:
                commands.remove(command)
                continue
            path, micros = result
            timings[path] = min(micros, timings.get(path, micros))
    if not timings:
        return 1
    fastest = min(timings, key=timings.__getitem__)
    if len(timings) > 1:
        others = ", ".join(
            f"{path} {timings[path] / timings[fastest]:.2f}x slower" for path in timings if path != fastest
        )
        print(f"using {fastest}, the fastest Python here ({others}); PYTHON=... chooses another", file=sys.stderr)
    print(fastest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
