"""Invoices an accountant can trust, on the real broker, database and SMTP sink."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from services.runtime.embedded import ServiceProcess, wait_until
from tests.support import (
    BCC,
    TopicReader,
    mails_to,
    new_order,
    oms,
    publish_orders,
    rows,
    scalar,
    settle,
)


async def test_an_smtp_outage_delays_invoices_and_loses_or_doubles_none(settings, services, engine, servers):
    orders = [new_order(n) for n in range(1, 6)]
    emails = [order["customer"]["email"] for order in orders]
    references = [order["order_reference"] for order in orders]
    servers.sink.stop()
    try:
        await publish_orders(settings, orders)

        async def tried_and_failed() -> bool:
            found = await rows(
                engine,
                """SELECT e.status, e.attempts, e.last_error FROM invoicing.invoice_email e
                   JOIN invoicing.invoice i ON i.id = e.invoice_id WHERE i.order_reference = ANY(:r)""",
                r=references,
            )
            return len(found) == 5 and all(row.attempts >= 2 and row.status == "pending" for row in found)

        await wait_until(tried_and_failed, timeout=60)
        failed = await rows(
            engine,
            """SELECT e.last_error FROM invoicing.invoice_email e JOIN invoicing.invoice i
                                       ON i.id = e.invoice_id WHERE i.order_reference = ANY(:r)""",
            r=references,
        )
        assert all("Connect" in row.last_error or "refused" in row.last_error for row in failed)
    finally:
        servers.sink.start()

    await wait_until(lambda: all(mails_to(servers.sink, email) for email in emails), timeout=60)
    await settle(3)
    assert [len(mails_to(servers.sink, email)) for email in emails] == [1] * 5
    assert (
        await scalar(
            engine,
            """SELECT count(*) FROM invoicing.invoice_email e JOIN invoicing.invoice i
                                   ON i.id = e.invoice_id WHERE i.order_reference = ANY(:r) AND e.status = 'sent'""",
            r=references,
        )
        == 5
    )
    async with TopicReader(settings, "invoice.sent") as reader:
        await reader.wait_for(lambda _: all(reader.events(reference) for reference in references))
        assert all(len(reader.events(reference)) == 1 for reference in references)


@pytest.fixture
async def second_invoicing_worker(servers, services):
    process = ServiceProcess("invoicing", servers.env, servers.logs_dir / "invoicing-2.log")
    process.start()

    def assigned() -> bool:
        text = process.log_file.read_text(errors="replace") if process.log_file.exists() else ""
        return any("order.created" in line and "assigned to partitions" in line for line in text.splitlines())

    await wait_until(assigned, timeout=60)
    yield process
    process.stop()


async def test_two_invoicing_workers_number_100_orders_without_gap_or_duplicate(
    settings, services, engine, second_invoicing_worker
):
    store = "T" + uuid.uuid4().hex[:6].upper()
    orders = [new_order(n, store=store) for n in range(1, 101)]
    await publish_orders(settings, orders)

    async def all_invoiced() -> bool:
        return await scalar(engine, "SELECT count(*) FROM invoicing.invoice WHERE store = :s", s=store) == 100

    await wait_until(all_invoiced, timeout=90)
    numbers = await rows(
        engine,
        """SELECT sequence_number, invoice_reference FROM invoicing.invoice
                                    WHERE store = :s ORDER BY sequence_number""",
        s=store,
    )
    assert [row.sequence_number for row in numbers] == list(range(1, 101))
    assert [row.invoice_reference for row in numbers] == [f"{store}-INV-{n:06d}" for n in range(1, 101)]
    # Both workers took part.
    assert "generated" in second_invoicing_worker.log_file.read_text(errors="replace")
    assert "generated" in services.logs("invoicing")


async def test_resend_sends_again_on_purpose_and_records_it(settings, services, engine, servers, tmp_path):
    order = new_order(1)
    reference, email = order["order_reference"], order["customer"]["email"]
    await publish_orders(settings, [order])
    (first,) = await wait_until(lambda: mails_to(servers.sink, email), timeout=30)

    result = oms("invoice", "resend", reference, "--requested-by", "anna.backoffice", env=servers.env)
    assert result.returncode == 0, result.stderr
    # The command waits for the invoice.sent its request caused, and says what the mail server took.
    assert f" of {reference} again to {email} (and {len(BCC)} in Bcc), asked by anna.backoffice; Message-ID <" in (
        result.stdout
    )

    def two_mails():
        found = mails_to(servers.sink, email)
        return found if len(found) == 2 else None

    mails = await wait_until(two_mails, timeout=30)
    second = mails[1]
    assert second.message["Subject"] == first.message["Subject"]
    assert second.message["Message-ID"] != first.message["Message-ID"]
    assert sorted(second.rcpt_tos) == sorted([email, *BCC])

    shown = oms("invoice", "show", reference, "--json", env=servers.env)
    assert shown.returncode == 0, shown.stderr
    deliveries = json.loads(shown.stdout)["deliveries"]
    assert [(d["purpose"], d["status"], d["requested_by"]) for d in deliveries] == [
        ("invoice", "sent", None),
        ("resend", "sent", "anna.backoffice"),
    ]
    text = oms("invoice", "show", reference, env=servers.env)
    assert json.loads(shown.stdout)["invoice_reference"] in text.stdout
    assert "e-mail (resend) to" in text.stdout and "asked by anna.backoffice" in text.stdout
    document = tmp_path / "invoice.html"
    written = oms("invoice", "show", reference, "--html", str(document), env=servers.env)
    assert written.returncode == 0, written.stderr
    assert json.loads(shown.stdout)["invoice_reference"] in document.read_text()
    async with TopicReader(settings, "invoice.sent") as reader:
        await reader.wait_for(lambda _: len(reader.events(reference)) == 2)
        assert [e["purpose"] for e in reader.events(reference)] == ["invoice", "resend"]

    unknown = oms("invoice", "show", "DE--NONE", env=servers.env)
    assert unknown.returncode != 0 and "there is no invoice for 'DE--NONE'" in unknown.stderr
    refused = oms("invoice", "resend", "DE--NONE", env=servers.env)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "error: resending the invoice of DE--NONE refused (unknown_invoice): there is no invoice for order 'DE--NONE'"
    )
    queued = oms("invoice", "resend", "DE--NONE", "--no-wait", env=servers.env)
    assert queued.returncode == 0 and queued.stdout.startswith("requested a resend of the invoice of DE--NONE")


async def test_a_name_carrying_a_header_injection_is_refused_and_never_mailed(settings, services, engine, servers):
    order = new_order(1)
    order["customer"]["first_name"] = "Anna\r\nBcc: victim@example.com"
    await publish_orders(settings, [order])
    async with TopicReader(settings, "dlq.order_state") as reader:
        key = order["order_reference"].encode()
        await reader.wait_for(lambda records: [r for r in records if r.key == key])
        (dead,) = [r for r in reader.records if r.key == key]
    reason = dict(dead.headers)["dlq.reason"].decode()
    assert "customer.first_name: must not contain control characters (found '\\r' at position 4)" in reason
    await asyncio.sleep(1)
    assert not mails_to(servers.sink, "victim@example.com")
    assert not mails_to(servers.sink, order["customer"]["email"])


def test_mail_settings_carrying_a_line_break_stop_the_service_with_a_clear_error(servers):
    result = oms("service", "invoicing", env={**servers.env, "OMS_INVOICE_REPLY_TO": "help@shop.example\r\nBcc: x@y.z"})
    assert result.returncode != 0
    assert "invalid settings" in result.stderr and "header injection" in result.stderr
    assert "Traceback" not in result.stderr


async def test_customers_read_their_invoice_in_their_language(settings, services, engine, servers):
    from datetime import UTC, datetime

    from services.runtime.formatting import money

    german, english = new_order(1), new_order(2)  # sample order 1 is de_DE, 2 en_US
    assert (german["locale"], english["locale"]) == ("de_DE", "en_US")
    await publish_orders(settings, [german, english])
    for order, words in ((german, ("Rechnung", "Gesamtbetrag")), (english, ("Invoice", "Total"))):
        (mail,) = await wait_until(lambda order=order: mails_to(servers.sink, order["customer"]["email"]), timeout=30)
        assert mail.message["Subject"].startswith(words[0])
        text = mail.message.get_body(("plain",)).get_content()
        html = mail.message.get_body(("html",)).get_content()
        grand = money(order["totals"]["grand_total"], "EUR", order["locale"])
        assert words[1] in text and grand in text and grand in html
        today = datetime.now(UTC)
        assert (today.strftime("%d.%m.%Y") if order is german else today.strftime("%b %-d, %Y")) in text
