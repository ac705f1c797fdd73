"""Formatting for people, by locale (Babel)."""

from __future__ import annotations

from decimal import Decimal

from babel.numbers import format_currency, get_currency_precision


def money(amount_minor: int, currency: str, locale: str) -> str:
    """Minor units as the locale writes money: 123456 EUR in de_DE is "1.234,56 €"."""
    digits = get_currency_precision(currency)
    return format_currency(Decimal(amount_minor).scaleb(-digits), currency, locale=locale)
