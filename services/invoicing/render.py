"""Invoice documents: Jinja2 templates (HTML autoescaped, plain text), figures formatted by Babel."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.dates import format_date
from babel.numbers import format_decimal
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.runtime.formatting import money

DEFAULT_TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class RenderedInvoice:
    subject: str
    text: str
    html: str


@lru_cache(maxsize=8)
def _environment(template_dir: str) -> Environment:
    environment = Environment(
        loader=FileSystemLoader(template_dir),
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return environment


def render_invoice(context: dict[str, Any], locale: str, template_dir: Path | None = None) -> RenderedInvoice:
    environment = _environment(str(template_dir or DEFAULT_TEMPLATES))
    currency = context["currency"]
    helpers = {
        "money": lambda amount: money(amount, currency, locale),
        "number": lambda value: format_decimal(value, locale=locale),
        "date": lambda value: format_date(
            value.date() if isinstance(value, datetime) else value, format="medium", locale=locale
        ),
        "percent": lambda rate: format_decimal(Decimal(rate).normalize(), locale=locale) + " %",
    }
    full = {**context, **helpers, "locale": locale}
    subject = environment.get_template("invoice_subject.txt.j2").render(full).strip()
    return RenderedInvoice(
        subject=subject,
        text=environment.get_template("invoice.txt.j2").render(full),
        html=environment.get_template("invoice.html.j2").render(full),
    )
