"""Invoice references."""

from __future__ import annotations


def format_invoice_reference(template: str, store: str, number: int) -> str:
    """`{store}-INV-{number:06d}` with store DE and number 7 gives `DE-INV-000007`."""
    try:
        return template.format(store=store, number=number)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            f"invoice reference format {template!r} is invalid ({exc}); it may use {{store}} and {{number}}"
        ) from exc
