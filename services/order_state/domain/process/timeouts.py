"""Spryker-style timeout texts: "1 hour", "30 minute", "15 days", "1 day 12 hours"."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}
_PART = re.compile(r"(\d+)\s*(second|minute|hour|day|week)s?", re.IGNORECASE)


def parse_timeout(text: str) -> timedelta:
    """The interval, or ValueError naming what was not understood."""
    stripped = text.strip()
    position, seconds, parts = 0, 0, 0
    for match in _PART.finditer(stripped):
        gap = stripped[position : match.start()].strip().strip(",").strip()
        if gap not in ("", "and"):
            break
        seconds += int(match.group(1)) * _UNITS[match.group(2).lower()]
        position = match.end()
        parts += 1
    if parts == 0 or stripped[position:].strip():
        raise ValueError(
            f"timeout {text!r} is not understood; use e.g. '30 minutes', '1 hour', '15 days' "
            "(units: second, minute, hour, day, week)"
        )
    if seconds <= 0:
        raise ValueError(f"timeout {text!r} must be longer than zero")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"timeout {text!r} is too long") from None
