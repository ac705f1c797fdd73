"""Invoice documents: Jinja2 templates per locale (HTML autoescaped, plain text, subject), figures formatted by Babel.

A template folder (the built-in ``templates/`` next to this module, or a replacement given as ``template_dir``)
holds one folder per locale, each with the three templates::

    en_US/invoice_subject.txt.j2    required in every template folder: the fallback for all other locales
    en_US/invoice.txt.j2
    en_US/invoice.html.j2
    de_DE/...                       any other locale, with the same three templates

Which locale folder renders an invoice (`template_locale`): the order's own locale (``de_AT``), else a folder of
its language (``de``, then the language's main locale ``de_DE``, then any other ``de_*``), else ``en_US``.
Money, numbers and dates follow the order's locale when the folder is of the same language (``de_AT`` rendered
with the ``de_DE`` templates writes "€ 1.234,56", the Austrian way), else the folder's own locale, so an English
document never carries French month names.

Templates see the context given to `render_invoice` plus: ``money(minor_units)`` (in the invoice's currency),
``number(value)``, ``percent(rate)`` (a tax rate in percent: 19 -> "19 %" in German), ``date(date_or_datetime)``
(Babel's medium format: "23.11.2026", "Nov 23, 2026"), ``country(alpha2)`` (the country's name),
``locale`` (the formatting locale) and ``template_locale`` (the folder). HTML templates (``*.html.j2``) are
autoescaped; undefined names are errors.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.core import Locale, UnknownLocaleError, get_global
from babel.dates import format_date
from babel.numbers import format_decimal, format_percent
from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound

from services.runtime.formatting import money

__all__ = [
    "DEFAULT_TEMPLATES",
    "FALLBACK_LOCALE",
    "TEMPLATE_NAMES",
    "InvoiceTemplateError",
    "RenderedInvoice",
    "check_template_dir",
    "money",
    "render_invoice",
    "template_locale",
]

DEFAULT_TEMPLATES = Path(__file__).parent / "templates"
FALLBACK_LOCALE = "en_US"
SUBJECT_TEMPLATE = "invoice_subject.txt.j2"
TEXT_TEMPLATE = "invoice.txt.j2"
HTML_TEMPLATE = "invoice.html.j2"
TEMPLATE_NAMES = (SUBJECT_TEMPLATE, TEXT_TEMPLATE, HTML_TEMPLATE)
_FALLBACK_WHY = f"{FALLBACK_LOCALE} is the fallback for every locale without its own folder"
_LINE_BREAKS = re.compile(r"[ \t\r\n\v\f\u2028\u2029\x85]+")


class InvoiceTemplateError(LookupError):
    """A template folder that cannot render invoices: the folder, a locale folder or a template is missing."""


@dataclass(frozen=True)
class RenderedInvoice:
    subject: str
    text: str
    html: str


def _parse_locale(name: str) -> Locale | None:
    """The Babel locale a name stands for; de_XX (a territory Babel has no data for) stands for de."""
    name = name.replace("-", "_")
    for candidate in (name, name.partition("_")[0]):
        try:
            return Locale.parse(candidate)
        except (ValueError, TypeError, UnknownLocaleError):
            continue
    return None


def _root(template_dir: Path | str | None) -> Path:
    root = Path(template_dir) if template_dir is not None else DEFAULT_TEMPLATES
    if not root.is_dir():
        raise InvoiceTemplateError(f"invoice template folder {root} does not exist or is not a folder")
    return root


def _locale_folders(root: Path) -> dict[str, Locale | None]:
    """The locale folders of a template folder, with the locale each one names (None: not a locale Babel knows)."""
    return {
        entry.name: _parse_locale(entry.name)
        for entry in root.iterdir()
        if entry.is_dir() and not entry.name.startswith((".", "_"))
    }


def _require_complete(root: Path, folder: str, why: str) -> None:
    for name in TEMPLATE_NAMES:
        if not (root / folder / name).is_file():
            raise InvoiceTemplateError(f"invoice template folder {root} has no {folder}/{name} ({why})")


def check_template_dir(template_dir: Path | str | None = None) -> None:
    """Raise `InvoiceTemplateError` unless the folder can render every locale: it exists, its en_US folder has
    all templates, and so does every other locale folder in it. Cheap enough to call at start-up."""
    root = _root(template_dir)
    _require_complete(root, FALLBACK_LOCALE, _FALLBACK_WHY)
    for folder in sorted(_locale_folders(root)):
        _require_complete(root, folder, f"every locale folder needs {', '.join(TEMPLATE_NAMES)}")


def _main_locale(language: str) -> str | None:
    """The locale a language is mostly written in: de -> de_DE, en -> en_US, pt -> pt_BR."""
    likely = get_global("likely_subtags").get(language)
    parsed = _parse_locale(likely) if likely else None
    if parsed is None or parsed.territory is None:
        return None
    return f"{language}_{parsed.territory}"


def _choose(locale: str, folders: dict[str, Locale | None]) -> str:
    if locale in folders:
        return locale
    requested = _parse_locale(locale)
    if requested is None:
        return FALLBACK_LOCALE
    if str(requested) in folders:
        return str(requested)
    same_language = sorted(
        name for name, parsed in folders.items() if parsed is not None and parsed.language == requested.language
    )
    for preferred in (requested.language, _main_locale(requested.language)):
        if preferred in same_language:
            return preferred
    return same_language[0] if same_language else FALLBACK_LOCALE


def template_locale(locale: str, template_dir: Path | str | None = None) -> str:
    """The locale folder that renders invoices for `locale`: de_AT -> de_DE, fr_FR -> en_US (built-in folder)."""
    root = _root(template_dir)
    _require_complete(root, FALLBACK_LOCALE, _FALLBACK_WHY)
    folder = _choose(locale, _locale_folders(root))
    _require_complete(root, folder, f"needed for locale {locale!r}")
    return folder


def _formatting_locale(locale: str, folder: str) -> str:
    """The requested locale when Babel knows it and it is written in the folder's language, else the folder's."""
    requested, written = _parse_locale(locale), _parse_locale(folder)
    if requested is not None and (written is None or written.language == requested.language):
        return str(requested)
    return str(written) if written is not None else FALLBACK_LOCALE


@lru_cache(maxsize=8)
def _environment(root: str) -> Environment:
    return Environment(
        loader=FileSystemLoader(root),
        autoescape=lambda name: name is None or name.endswith((".html.j2", ".html", ".htm")),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _helpers(currency: str, locale: str) -> dict[str, Callable[..., str]]:
    territories = Locale.parse(locale).territories

    def as_date(value: date | datetime) -> str:
        # A datetime's date in its own time zone: the caller chooses the zone by the datetime it passes.
        return format_date(value.date() if isinstance(value, datetime) else value, format="medium", locale=locale)

    def percent(rate: Decimal | float | int | str) -> str:
        return format_percent(Decimal(str(rate)) / 100, locale=locale, decimal_quantization=False)

    return {
        "money": lambda amount: money(amount, currency, locale),
        "number": lambda value: format_decimal(value, locale=locale),
        "percent": percent,
        "date": as_date,
        "country": lambda code: territories.get(code, code) if code else "",
    }


def render_invoice(context: dict[str, Any], locale: str, template_dir: Path | str | None = None) -> RenderedInvoice:
    """Subject, plain text and HTML of one invoice in `locale`, from the built-in templates or `template_dir`.

    Raises `InvoiceTemplateError` naming the folder and the template when a template is missing."""
    root = _root(template_dir)
    folder = template_locale(locale, root)
    formatting = _formatting_locale(locale, folder)
    variables = {
        **context,
        **_helpers(context["currency"], formatting),
        "locale": formatting,
        "template_locale": folder,
    }
    environment = _environment(str(root))
    rendered: dict[str, str] = {}
    for name in TEMPLATE_NAMES:
        try:
            rendered[name] = environment.get_template(f"{folder}/{name}").render(variables)
        except TemplateNotFound as error:
            raise InvoiceTemplateError(
                f"invoice template folder {root}: {folder}/{name} needs the template {error.name!r}, which is missing"
            ) from error
    return RenderedInvoice(
        # One line, whatever the template or the data hold: it becomes an e-mail header.
        subject=_LINE_BREAKS.sub(" ", rendered[SUBJECT_TEMPLATE]).strip(),
        text=rendered[TEXT_TEMPLATE],
        html=rendered[HTML_TEMPLATE],
    )
