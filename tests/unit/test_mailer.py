"""The invoice e-mail as built before it is sent: headers a customer sees, refusals of injection."""

from __future__ import annotations

import re

import pytest

from services.invoicing.mailer import RefusedEmail, build_message, envelope_address


def message(**changes):
    fields = dict(
        sender="Shop Billing <billing@shop.example>",
        reply_to="help@shop.example",
        recipient="anna@example.com",
        recipient_name="Anna Schmidt",
        subject="Invoice DE-INV-000001",
        text="Total: €10.00",
        html="<p>Total: €10.00</p>",
        message_id="<invoice.DE-INV-000001.abc@shop.example>",
    )
    fields.update(changes)
    return build_message(**fields)


def test_headers_name_the_customer_and_carry_no_bcc():
    built = message()
    assert built["To"] == "Anna Schmidt <anna@example.com>"
    assert built["From"] == "Shop Billing <billing@shop.example>"
    assert built["Reply-To"] == "help@shop.example"
    assert built["Bcc"] is None
    assert [part.get_content_type() for part in built.iter_parts()] == ["text/plain", "text/html"]


def test_a_name_with_quotes_or_commas_is_quoted_not_split():
    assert message(recipient_name='Schmidt, Anna "Ann"')["To"] == '"Schmidt, Anna \\"Ann\\"" <anna@example.com>'


@pytest.mark.parametrize(
    ("field", "value", "header"),
    [
        ("recipient_name", "Anna\r\nBcc: victim@example.com", "To (name)"),
        ("recipient", "anna@example.com\nBcc: victim@example.com", "To"),
        ("subject", "Invoice\r\nBcc: victim@example.com", "Subject"),
        ("sender", "billing@shop.example\r\nX-Evil: 1", "From"),
        ("reply_to", "help@shop.example\nBcc: victim@example.com", "Reply-To"),
    ],
)
def test_line_breaks_in_any_header_are_refused(field, value, header):
    with pytest.raises(RefusedEmail, match=f"^{re.escape(header)} contains a line break or NUL \\(header injection\\)"):
        message(**{field: value})


def test_the_envelope_sender_is_the_bare_address():
    assert envelope_address("Shop Billing <billing@shop.example>") == "billing@shop.example"
    with pytest.raises(RefusedEmail, match="expected one address"):
        envelope_address("a@x.example, b@x.example")
