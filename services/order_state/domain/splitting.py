"""How an ordered line becomes sales order items."""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple


class ItemSplit(NamedTuple):
    """`count` items carrying `quantity_each`; count * quantity_each is the ordered quantity."""

    count: int
    quantity_each: int


def split_line(
    quantity: int, *, is_quantity_splittable: bool, threshold: int | None = None, is_bundle: bool = False
) -> ItemSplit:
    """A line of quantity N becomes N items of quantity 1, unless the product is not
    quantity-splittable or N reaches the threshold; then one item of quantity N. Bundles always split."""
    return _split(quantity, is_quantity_splittable, threshold, is_bundle)


@lru_cache(maxsize=4096)  # orders repeat the same few (quantity, flags) combinations; positional: a cheaper key
def _split(quantity: int, is_quantity_splittable: bool, threshold: int | None, is_bundle: bool) -> ItemSplit:
    if quantity < 1:
        raise ValueError(f"quantity must be at least 1, got {quantity}")
    splits = is_bundle or (is_quantity_splittable and (threshold is None or quantity < threshold))
    return ItemSplit(quantity, 1) if splits else ItemSplit(1, quantity)
