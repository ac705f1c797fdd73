"""Invoice documents as the customer and the accountant read them: wording, figures, dates and addresses per
locale, in HTML and plain text; the locale fallback; replacement template folders; escaping.

Babel separates amounts from their currency and percent sign with a no-break space; in the expected strings
below `~` stands for it (see `nb`)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from babel.numbers import get_group_symbol
from jinja2 import UndefinedError

from schemas import Address, Customer, OrderCreated, OrderLine, Shipment, ShipmentMethod, Totals
from services.invoicing.domain.document import compute_figures
from services.invoicing.render import (
    DEFAULT_TEMPLATES,
    InvoiceTemplateError,
    RenderedInvoice,
    check_template_dir,
    money,
    render_invoice,
    template_locale,
)

ISSUED_AT = dt.datetime(2026, 11, 23, 9, 30, tzinfo=dt.UTC)


def nb(text: str) -> str:
    """Expected text with `~` for the no-break space Babel puts between amount and currency or percent sign."""
    return text.replace("~", "\xa0")


# -- the order: three lines at 19 % and 7 %, two shipments, a company billing address with extra lines ----------


def order_created(price_mode: str = "GROSS_MODE") -> OrderCreated:
    billing = Address(
        salutation="Mr",
        first_name="Jonas",
        last_name="Huber",
        company="Huber Kaffeerösterei GmbH",
        address1="Mariahilfer Straße 12",
        address2="Stiege 2, Top 7",
        address3="c/o Buchhaltung",
        zip_code="1070",
        city="Wien",
        country="AT",
    )
    warehouse = Address(
        first_name="Jonas",
        last_name="Huber",
        address1="Industriestraße 4",
        zip_code="2351",
        city="Wr. Neudorf",
        country="AT",
    )
    standard = Shipment(
        address=billing, method=ShipmentMethod(key="dhl_standard", name="DHL Standard", price=490, tax_rate=19)
    )
    freight = Shipment(
        address=warehouse,
        method=ShipmentMethod(key="freight", name="Spedition", price=4900, tax_rate=19),
        requested_delivery_date=dt.date(2026, 12, 1),
    )

    def line(number: int, sku: str, name: str, quantity: int, unit_price: int, tax_rate: float, shipment: Shipment):
        return OrderLine(
            line_number=number,
            sku=sku,
            name=name,
            quantity=quantity,
            unit_price=unit_price,
            tax_rate=tax_rate,
            is_quantity_splittable=quantity < 100,
            shipment=shipment,
            item_id_ranges=[(number * 10, number * 10 + (quantity if quantity < 100 else 1) - 1)],
            item_count=quantity if quantity < 100 else 1,
            item_quantity=1 if quantity < 100 else quantity,
        )

    return OrderCreated(
        order_reference="AT--1042",
        custom_order_reference="PO-2026-0815",
        store="AT",
        locale="de_AT",
        currency="EUR",
        price_mode=price_mode,
        customer=Customer(
            customer_reference="AT--CUST-7", email="jonas@example.com", first_name="Jonas", last_name="Huber"
        ),
        billing_address=billing,
        process_name="OmsDefault01",
        payment_method="dummyPaymentInvoice",
        initial_state="new",
        lines=[
            line(1, "SKU-ESPRESSO-PRO", "Espressomaschine Barista Pro", 1, 129999, 19, standard),
            line(2, "SKU-BEANS-1KG", "Kaffeebohnen 1 kg", 3, 1849, 7, standard),
            line(3, "SKU-CUPS-PALLET", "Pappbecher 0,2 l", 1200, 35, 19, freight),
        ],
        totals=Totals(subtotal=177546, expense_total=5390, tax_total=28685, grand_total=182936),
        placed_at=ISSUED_AT - dt.timedelta(hours=1),
    )


def invoice_context(price_mode: str = "GROSS_MODE", **changes: Any) -> dict[str, Any]:
    """What services.invoicing.handlers.generate_invoices passes to render_invoice."""
    order = order_created(price_mode)
    context = {
        "invoice_reference": "AT-INV-000042",
        "issued_at": ISSUED_AT,
        "order_reference": order.order_reference,
        "custom_order_reference": order.custom_order_reference,
        "billing_address": order.billing_address.model_dump(),
        "customer": order.customer.model_dump(),
        "currency": order.currency,
        "gross": order.price_mode == "GROSS_MODE",
        **asdict(compute_figures(order)),
    }
    return {**context, **changes}


# -- what a reader sees in the HTML part: one line per block, table cells joined by " | ", "_" for an empty cell ----


class _VisibleText(HTMLParser):
    BREAKS = frozenset({"br", "p", "h1", "h2", "h3", "tr", "table", "address", "div", "title", "li"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.cells: list[list[str]] = []

    def _flush(self) -> None:
        cells = [re.sub(r"[ \t\r\n]+", " ", "".join(cell)).strip() for cell in self.cells]
        if any(cells):
            self.lines.append(" | ".join(cell or "_" for cell in cells))
        self.cells = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.BREAKS:
            self._flush()
        elif tag in ("td", "th"):
            self.cells.append([])

    def handle_endtag(self, tag: str) -> None:
        if tag in self.BREAKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self.cells:
            self.cells.append([])
        self.cells[-1].append(data)


def visible(html: str) -> list[str]:
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    parser._flush()
    return parser.lines


def section(lines: list[str], first: str, count: int) -> list[str]:
    start = lines.index(first)
    return lines[start : start + count]


# -- the built-in documents -----------------------------------------------------------------------------------------


def test_money_is_still_importable_from_render_and_formats_by_locale():
    assert money(123456, "EUR", "de_DE") == nb("1.234,56~€")
    assert money(123456, "EUR", "en_US") == "€1,234.56"


def test_built_in_templates_are_complete():
    check_template_dir()
    assert sorted(path.name for path in DEFAULT_TEMPLATES.iterdir() if path.is_dir()) == ["de_DE", "en_US"]


def test_german_invoice_html_gross_mode():
    rendered = render_invoice(invoice_context(), "de_DE")
    assert rendered.subject == "Rechnung AT-INV-000042 zu Ihrer Bestellung AT--1042 (Ihre Referenz: PO-2026-0815)"
    assert '<html lang="de-DE">' in rendered.html
    assert visible(rendered.html) == [
        nb(line)
        for line in [
            "Rechnung AT-INV-000042",
            "Rechnung AT-INV-000042",
            "Vielen Dank für Ihre Bestellung.",
            "Rechnungsnummer | AT-INV-000042",
            "Rechnungsdatum | 23.11.2026",
            "Bestellnummer | AT--1042",
            "Ihre Referenz | PO-2026-0815",
            "Kundennummer | AT--CUST-7",
            "Rechnungsadresse",
            "Huber Kaffeerösterei GmbH",
            "Herr Jonas Huber",
            "Mariahilfer Straße 12",
            "Stiege 2, Top 7",
            "c/o Buchhaltung",
            "1070 Wien",
            "Österreich",
            "Pos. | Artikel | Artikelnr. | Menge | Einzelpreis | MwSt. | Gesamt",
            "1 | Espressomaschine Barista Pro | SKU-ESPRESSO-PRO | 1 | 1.299,99~€ | 19~% | 1.299,99~€",
            "2 | Kaffeebohnen 1 kg | SKU-BEANS-1KG | 3 | 18,49~€ | 7~% | 55,47~€",
            "3 | Pappbecher 0,2 l | SKU-CUPS-PALLET | 1.200 | 0,35~€ | 19~% | 420,00~€",
            "_ | Versand: DHL Standard | _ | _ | _ | 19~% | 4,90~€",
            "_ | Versand: Spedition | _ | _ | _ | 19~% | 49,00~€",
            "Zwischensumme | 1.775,46~€",
            "Versand | 53,90~€",
            "Gesamtbetrag | 1.829,36~€",
            "enthaltene MwSt. 7~% | 3,63~€",
            "enthaltene MwSt. 19~% | 283,22~€",
            "Alle Preise inkl. MwSt.",
        ]
    ]


def test_german_invoice_text_gross_mode():
    text = render_invoice(invoice_context(), "de_DE").text
    assert text == nb(
        """\
Rechnung AT-INV-000042

Vielen Dank für Ihre Bestellung.

Rechnungsnummer:             AT-INV-000042
Rechnungsdatum:              23.11.2026
Bestellnummer:               AT--1042
Ihre Referenz:               PO-2026-0815
Kundennummer:                AT--CUST-7

Rechnungsadresse:
Huber Kaffeerösterei GmbH
Herr Jonas Huber
Mariahilfer Straße 12
Stiege 2, Top 7
c/o Buchhaltung
1070 Wien
Österreich

Positionen:
1. Espressomaschine Barista Pro (Artikelnr. SKU-ESPRESSO-PRO)
   Menge: 1 | Einzelpreis: 1.299,99~€ | MwSt.: 19~% | Gesamt: 1.299,99~€
2. Kaffeebohnen 1 kg (Artikelnr. SKU-BEANS-1KG)
   Menge: 3 | Einzelpreis: 18,49~€ | MwSt.: 7~% | Gesamt: 55,47~€
3. Pappbecher 0,2 l (Artikelnr. SKU-CUPS-PALLET)
   Menge: 1.200 | Einzelpreis: 0,35~€ | MwSt.: 19~% | Gesamt: 420,00~€
Versand: DHL Standard
   MwSt.: 19~% | Gesamt: 4,90~€
Versand: Spedition
   MwSt.: 19~% | Gesamt: 49,00~€

Zwischensumme:               1.775,46~€
Versand:                     53,90~€
Gesamtbetrag:                1.829,36~€
enthaltene MwSt. 7~%:        3,63~€
enthaltene MwSt. 19~%:       283,22~€

Alle Preise inkl. MwSt.
"""
    )


def test_english_invoice_html_gross_mode():
    rendered = render_invoice(invoice_context(), "en_US")
    assert rendered.subject == "Invoice AT-INV-000042 for your order AT--1042 (your reference: PO-2026-0815)"
    assert '<html lang="en-US">' in rendered.html
    assert visible(rendered.html) == [
        "Invoice AT-INV-000042",
        "Invoice AT-INV-000042",
        "Thank you for your order.",
        "Invoice number | AT-INV-000042",
        "Invoice date | Nov 23, 2026",
        "Order number | AT--1042",
        "Your reference | PO-2026-0815",
        "Customer number | AT--CUST-7",
        "Billing address",
        "Mr. Jonas Huber",
        "Huber Kaffeerösterei GmbH",
        "Mariahilfer Straße 12",
        "Stiege 2, Top 7",
        "c/o Buchhaltung",
        "1070 Wien",
        "Austria",
        "No. | Item | SKU | Quantity | Unit price | VAT | Total",
        "1 | Espressomaschine Barista Pro | SKU-ESPRESSO-PRO | 1 | €1,299.99 | 19% | €1,299.99",
        "2 | Kaffeebohnen 1 kg | SKU-BEANS-1KG | 3 | €18.49 | 7% | €55.47",
        "3 | Pappbecher 0,2 l | SKU-CUPS-PALLET | 1,200 | €0.35 | 19% | €420.00",
        "_ | Shipping: DHL Standard | _ | _ | _ | 19% | €4.90",
        "_ | Shipping: Spedition | _ | _ | _ | 19% | €49.00",
        "Subtotal | €1,775.46",
        "Shipping | €53.90",
        "Grand total | €1,829.36",
        "Included VAT 7% | €3.63",
        "Included VAT 19% | €283.22",
        "All prices include VAT.",
    ]


def test_english_invoice_text_gross_mode():
    text = render_invoice(invoice_context(), "en_US").text
    assert text == (
        """\
Invoice AT-INV-000042

Thank you for your order.

Invoice number:              AT-INV-000042
Invoice date:                Nov 23, 2026
Order number:                AT--1042
Your reference:              PO-2026-0815
Customer number:             AT--CUST-7

Billing address:
Mr. Jonas Huber
Huber Kaffeerösterei GmbH
Mariahilfer Straße 12
Stiege 2, Top 7
c/o Buchhaltung
1070 Wien
Austria

Items:
1. Espressomaschine Barista Pro (SKU: SKU-ESPRESSO-PRO)
   Quantity: 1 | Unit price: €1,299.99 | VAT: 19% | Total: €1,299.99
2. Kaffeebohnen 1 kg (SKU: SKU-BEANS-1KG)
   Quantity: 3 | Unit price: €18.49 | VAT: 7% | Total: €55.47
3. Pappbecher 0,2 l (SKU: SKU-CUPS-PALLET)
   Quantity: 1,200 | Unit price: €0.35 | VAT: 19% | Total: €420.00
Shipping: DHL Standard
   VAT: 19% | Total: €4.90
Shipping: Spedition
   VAT: 19% | Total: €49.00

Subtotal:                    €1,775.46
Shipping:                    €53.90
Grand total:                 €1,829.36
Included VAT 7%:             €3.63
Included VAT 19%:            €283.22

All prices include VAT.
"""
    )


def test_net_mode_adds_tax_before_the_grand_total_in_both_languages():
    context = invoice_context("NET_MODE")
    german, english = render_invoice(context, "de_DE"), render_invoice(context, "en_US")
    assert section(visible(german.html), "Zwischensumme | 1.775,46\xa0€", 6) == [
        nb("Zwischensumme | 1.775,46~€"),
        nb("Versand | 53,90~€"),
        nb("zzgl. MwSt. 7~% | 3,88~€"),
        nb("zzgl. MwSt. 19~% | 337,04~€"),
        nb("Gesamtbetrag | 2.170,28~€"),
        "Alle Preise zzgl. MwSt.",
    ]
    assert section(german.text.splitlines(), nb("Zwischensumme:               1.775,46~€"), 7) == [
        nb("Zwischensumme:               1.775,46~€"),
        nb("Versand:                     53,90~€"),
        nb("zzgl. MwSt. 7~%:             3,88~€"),
        nb("zzgl. MwSt. 19~%:            337,04~€"),
        nb("Gesamtbetrag:                2.170,28~€"),
        "",
        "Alle Preise zzgl. MwSt.",
    ]
    assert section(visible(english.html), "Subtotal | €1,775.46", 6) == [
        "Subtotal | €1,775.46",
        "Shipping | €53.90",
        "Plus VAT 7% | €3.88",
        "Plus VAT 19% | €337.04",
        "Grand total | €2,170.28",
        "All prices exclude VAT.",
    ]
    assert section(english.text.splitlines(), "Subtotal:                    €1,775.46", 7) == [
        "Subtotal:                    €1,775.46",
        "Shipping:                    €53.90",
        "Plus VAT 7%:                 €3.88",
        "Plus VAT 19%:                €337.04",
        "Grand total:                 €2,170.28",
        "",
        "All prices exclude VAT.",
    ]


def test_optional_parts_are_left_out_when_absent():
    context = invoice_context(custom_order_reference=None)
    context["billing_address"] = {
        **context["billing_address"],
        "salutation": None,
        "company": None,
        "address2": None,
        "address3": None,
    }
    context["customer"] = {**context["customer"], "customer_reference": None}
    rendered = render_invoice(context, "de_DE")
    assert rendered.subject == "Rechnung AT-INV-000042 zu Ihrer Bestellung AT--1042"
    assert section(visible(rendered.html), "Rechnungsnummer | AT-INV-000042", 9) == [
        "Rechnungsnummer | AT-INV-000042",
        "Rechnungsdatum | 23.11.2026",
        "Bestellnummer | AT--1042",
        "Rechnungsadresse",
        "Jonas Huber",
        "Mariahilfer Straße 12",
        "1070 Wien",
        "Österreich",
        "Pos. | Artikel | Artikelnr. | Menge | Einzelpreis | MwSt. | Gesamt",
    ]
    assert section(rendered.text.splitlines(), "Bestellnummer:               AT--1042", 8) == [
        "Bestellnummer:               AT--1042",
        "",
        "Rechnungsadresse:",
        "Jonas Huber",
        "Mariahilfer Straße 12",
        "1070 Wien",
        "Österreich",
        "",
    ]


def test_the_invoice_date_is_the_day_in_the_time_zone_of_the_datetime_given():
    berlin_new_year = dt.datetime(2026, 12, 31, 23, 30, tzinfo=dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=1)))
    rendered = render_invoice(invoice_context(issued_at=berlin_new_year), "de_DE")
    assert "Rechnungsdatum:              01.01.2027" in rendered.text.splitlines()
    assert "Rechnungsdatum | 01.01.2027" in visible(rendered.html)


# -- which locale folder renders -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "folder"),
    [
        ("de_DE", "de_DE"),
        ("de_AT", "de_DE"),
        ("de_CH", "de_DE"),
        ("de", "de_DE"),
        ("de-DE", "de_DE"),
        ("de_XX", "de_DE"),
        ("en_US", "en_US"),
        ("en_GB", "en_US"),
        ("fr_FR", "en_US"),
        ("xx_YY", "en_US"),
        ("", "en_US"),
    ],
)
def test_locale_fallback_in_the_built_in_folder(locale, folder):
    assert template_locale(locale) == folder


def test_austrian_order_gets_german_wording_with_austrian_number_formats():
    rendered = render_invoice(invoice_context(), "de_AT")
    lines = visible(rendered.html)
    assert rendered.subject == "Rechnung AT-INV-000042 zu Ihrer Bestellung AT--1042 (Ihre Referenz: PO-2026-0815)"
    assert '<html lang="de-AT">' in rendered.html
    assert "Rechnungsdatum | 23.11.2026" in lines
    assert nb("1 | Espressomaschine Barista Pro | SKU-ESPRESSO-PRO | 1 | €~1.299,99 | 19~% | €~1.299,99") in lines
    assert nb("Gesamtbetrag | €~1.829,36") in lines
    assert nb("enthaltene MwSt. 19~% | €~283,22") in lines
    assert nb("Gesamtbetrag:                €~1.829,36") in rendered.text.splitlines()


def test_french_order_gets_the_english_document_with_english_formats():
    rendered = render_invoice(invoice_context(), "fr_FR")
    assert rendered == render_invoice(invoice_context(), "en_US")


def test_british_order_gets_english_wording_with_british_dates():
    lines = visible(render_invoice(invoice_context(), "en_GB").html)
    assert "Invoice date | 23 Nov 2026" in lines
    assert "Grand total | €1,829.36" in lines


# -- replacement template folders ----------------------------------------------------------------------------------


def write_locale(root: Path, locale: str, word: str) -> None:
    folder = root / locale
    folder.mkdir(parents=True)
    (folder / "invoice_subject.txt.j2").write_text(
        f"{word} {{{{ invoice_reference }}}}\n  ({{{{ template_locale }}}})\n", encoding="utf-8"
    )
    (folder / "invoice.txt.j2").write_text(
        f"{word}: {{{{ money(grand_total) }}}} / {{{{ date(issued_at) }}}} / {{{{ custom_order_reference }}}}\n",
        encoding="utf-8",
    )
    (folder / "invoice.html.j2").write_text(
        f"<p>{word}: {{{{ money(grand_total) }}}} / {{{{ custom_order_reference }}}}</p>\n", encoding="utf-8"
    )


def test_replacement_folder_with_some_locales_falls_back_inside_itself(tmp_path):
    write_locale(tmp_path, "en_US", "Bill")
    write_locale(tmp_path, "de_CH", "Faktura")
    check_template_dir(tmp_path)
    context = invoice_context(custom_order_reference="PO <7> & Co")

    swiss = render_invoice(context, "de_CH", template_dir=tmp_path)
    group = get_group_symbol("de_CH")  # CLDR's Swiss thousands separator: U+2019 or an apostrophe, by release
    assert group in ("\u2019", "'")
    assert swiss == RenderedInvoice(
        subject="Faktura AT-INV-000042 (de_CH)",
        text=f"Faktura: EUR\xa01{group}829.36 / 23.11.2026 / PO <7> & Co\n",
        html=f"<p>Faktura: EUR\xa01{group}829.36 / PO &lt;7&gt; &amp; Co</p>\n".replace("'", "&#39;"),
    )
    # German of Germany has no folder here: the language's folder renders it, with German formats.
    german = render_invoice(context, "de_DE", template_dir=tmp_path)
    assert german.subject == "Faktura AT-INV-000042 (de_CH)"
    assert german.text == nb("Faktura: 1.829,36~€ / 23.11.2026 / PO <7> & Co\n")
    # Neither the locale nor its language: the folder's en_US, never the built-in templates.
    french = render_invoice(context, "fr_FR", template_dir=tmp_path)
    assert french == RenderedInvoice(
        subject="Bill AT-INV-000042 (en_US)",
        text="Bill: €1,829.36 / Nov 23, 2026 / PO <7> & Co\n",
        html="<p>Bill: €1,829.36 / PO &lt;7&gt; &amp; Co</p>\n",
    )


def test_language_folder_then_main_locale_then_any_other_of_the_language(tmp_path):
    for locale in ("en_US", "de_CH", "de_DE", "pt_PT"):
        write_locale(tmp_path, locale, "x")
    assert template_locale("de_AT", tmp_path) == "de_DE"
    assert template_locale("de_CH", tmp_path) == "de_CH"
    assert template_locale("pt_BR", tmp_path) == "pt_PT"
    write_locale(tmp_path, "de", "x")
    assert template_locale("de_AT", tmp_path) == "de"
    assert template_locale("de_DE", tmp_path) == "de_DE"


def test_folders_starting_with_an_underscore_hold_shared_parts_not_locales(tmp_path):
    write_locale(tmp_path, "en_US", "Bill")
    (tmp_path / "_shared").mkdir()
    (tmp_path / "_shared" / "footer.html.j2").write_text("<p>{{ custom_order_reference }}</p>", encoding="utf-8")
    (tmp_path / "en_US" / "invoice.html.j2").write_text('{% include "_shared/footer.html.j2" %}', encoding="utf-8")
    check_template_dir(tmp_path)
    rendered = render_invoice(invoice_context(custom_order_reference='"A&B"'), "en_US", template_dir=tmp_path)
    assert rendered.html == "<p>&#34;A&amp;B&#34;</p>"


def test_replacement_folder_without_en_us_is_a_clear_error(tmp_path):
    write_locale(tmp_path, "de_DE", "Rechnung")
    expected = (
        f"invoice template folder {tmp_path} has no en_US/invoice_subject.txt.j2 "
        "(en_US is the fallback for every locale without its own folder)"
    )
    for locale in ("fr_FR", "de_DE"):
        with pytest.raises(InvoiceTemplateError) as raised:
            render_invoice(invoice_context(), locale, template_dir=tmp_path)
        assert str(raised.value) == expected
    with pytest.raises(InvoiceTemplateError) as raised:
        check_template_dir(tmp_path)
    assert str(raised.value) == expected


def test_a_missing_template_in_a_locale_folder_is_named(tmp_path):
    write_locale(tmp_path, "en_US", "Bill")
    write_locale(tmp_path, "de_DE", "Rechnung")
    (tmp_path / "en_US" / "invoice.html.j2").unlink()
    with pytest.raises(InvoiceTemplateError) as raised:
        render_invoice(invoice_context(), "en_US", template_dir=tmp_path)
    assert str(raised.value) == (
        f"invoice template folder {tmp_path} has no en_US/invoice.html.j2 "
        "(en_US is the fallback for every locale without its own folder)"
    )

    write_locale(tmp_path / "fixed", "en_US", "Bill")
    (tmp_path / "fixed" / "de_AT").mkdir()
    (tmp_path / "fixed" / "de_AT" / "invoice.txt.j2").write_text("Rechnung", encoding="utf-8")
    with pytest.raises(InvoiceTemplateError) as raised:
        render_invoice(invoice_context(), "de_AT", template_dir=tmp_path / "fixed")
    assert str(raised.value) == (
        f"invoice template folder {tmp_path / 'fixed'} has no de_AT/invoice_subject.txt.j2 (needed for locale 'de_AT')"
    )


def test_a_missing_included_template_is_named(tmp_path):
    write_locale(tmp_path, "en_US", "Bill")
    (tmp_path / "en_US" / "invoice.html.j2").write_text('{% include "_shared/footer.html.j2" %}', encoding="utf-8")
    with pytest.raises(InvoiceTemplateError) as raised:
        render_invoice(invoice_context(), "en_US", template_dir=tmp_path)
    assert str(raised.value) == (
        f"invoice template folder {tmp_path}: en_US/invoice.html.j2 needs the template "
        "'_shared/footer.html.j2', which is missing"
    )


def test_a_template_folder_that_does_not_exist_is_a_clear_error(tmp_path):
    with pytest.raises(InvoiceTemplateError) as raised:
        render_invoice(invoice_context(), "en_US", template_dir=tmp_path / "nowhere")
    assert str(raised.value) == f"invoice template folder {tmp_path / 'nowhere'} does not exist or is not a folder"


# -- escaping and strictness ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("locale", ["de_DE", "en_US"])
def test_a_product_name_with_markup_is_text_in_html_and_literal_in_plain_text(locale):
    context = invoice_context()
    context["lines"] = [{**context["lines"][0], "name": "<script>alert(1)</script>"}, *context["lines"][1:]]
    rendered = render_invoice(context, locale)
    assert "<script>" not in rendered.html
    assert "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>" in rendered.html
    assert visible(rendered.html)[17].split(" | ")[:2] == ["1", "<script>alert(1)</script>"]
    sku = "Artikelnr. SKU-ESPRESSO-PRO" if locale == "de_DE" else "SKU: SKU-ESPRESSO-PRO"
    assert f"1. <script>alert(1)</script> ({sku})" in rendered.text.splitlines()


@pytest.mark.parametrize("locale", ["de_DE", "en_US"])
def test_a_custom_order_reference_with_ampersand_and_quotes_is_escaped_in_html_only(locale):
    reference = 'PO "Q4" & <urgent>'
    rendered = render_invoice(invoice_context(custom_order_reference=reference), locale)
    label = "Ihre Referenz" if locale == "de_DE" else "Your reference"
    assert f'<tr><th align="left">{label}</th><td>PO &#34;Q4&#34; &amp; &lt;urgent&gt;</td></tr>' in rendered.html
    assert f"{label} | {reference}" in visible(rendered.html)
    assert f"{label + ':':<28} {reference}" in rendered.text.splitlines()
    assert rendered.subject.endswith(f"({label if locale == 'de_DE' else 'your reference'}: {reference})")


def test_undefined_names_are_errors():
    context = invoice_context()
    del context["order_reference"]
    with pytest.raises(UndefinedError, match="order_reference"):
        render_invoice(context, "de_DE")
