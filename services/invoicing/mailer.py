"""Sends queued invoice e-mails outside the consumer's poll loop, with retry and backoff.

The SMTP outage case: the row stays `pending` with a later `next_attempt_at`; nothing is lost. The
row is locked (FOR UPDATE SKIP LOCKED) while it is sent, so two workers never send the same e-mail.
A crash between the SMTP server's acceptance and the commit can send one e-mail twice; both copies
carry the same Message-ID, which mail clients use to fold duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, getaddresses

import aiosmtplib
from sqlalchemy import select, update

from schemas import InvoiceSent
from services.invoicing.tables import invoice, invoice_email
from services.runtime.service import ServiceContext
from services.runtime.settings import Settings
from services.runtime.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


class RefusedEmail(ValueError):
    """An e-mail that must never be sent as it is (e.g. a header carrying CR/LF)."""


def _check_header(name: str, value: str) -> str:
    if any(char in value for char in "\r\n\x00"):
        raise RefusedEmail(f"{name} contains a line break or NUL (header injection): {value!r}")
    return value


def build_message(
    *,
    sender: str,
    reply_to: str | None,
    recipient: str,
    subject: str,
    text: str,
    html: str,
    message_id: str,
    recipient_name: str | None = None,
) -> EmailMessage:
    """The e-mail as the customer sees it. BCC recipients are never a header: they are only in the SMTP
    envelope (see `send`). Any header value carrying CR/LF or NUL is refused."""
    message = EmailMessage()
    message["From"] = _check_header("From", sender)
    _check_header("To", recipient)
    if recipient_name:
        _check_header("To (name)", recipient_name)
        local, _, domain = recipient.rpartition("@")
        try:
            message["To"] = Address(display_name=recipient_name, username=local, domain=domain)
        except (ValueError, IndexError) as exc:
            raise RefusedEmail(f"To address {recipient!r} with name {recipient_name!r} is invalid: {exc}") from exc
    else:
        message["To"] = recipient
    if reply_to:
        message["Reply-To"] = _check_header("Reply-To", reply_to)
    message["Subject"] = _check_header("Subject", subject)
    message["Message-ID"] = _check_header("Message-ID", message_id)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def envelope_address(header_value: str) -> str:
    addresses = [address for _name, address in getaddresses([header_value]) if address]
    if len(addresses) != 1:
        raise RefusedEmail(f"expected one address, got {header_value!r}")
    return addresses[0]


async def send(settings: Settings, message: EmailMessage, recipients: list[str]) -> None:
    await aiosmtplib.send(
        message,
        sender=envelope_address(settings.invoice_from),
        recipients=recipients,
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        start_tls=settings.smtp_starttls,
        use_tls=settings.smtp_use_tls,
        timeout=settings.smtp_timeout_seconds,
    )


def retry_delay(attempts: int, settings: Settings) -> timedelta:
    return timedelta(seconds=min(2 ** max(attempts - 1, 0), settings.mail_retry_max_seconds))


async def deliver_one(context: ServiceContext) -> bool:
    """Send the oldest due e-mail, if any. True when one was handled (sent, delayed or refused)."""
    settings = context.settings
    async with context.engine.begin() as conn:
        row = (
            await conn.execute(
                select(
                    invoice_email,
                    invoice.c.order_reference,
                    invoice.c.custom_order_reference,
                    invoice.c.invoice_reference,
                )
                .join(invoice, invoice.c.id == invoice_email.c.invoice_id)
                .where(invoice_email.c.status == "pending", invoice_email.c.next_attempt_at <= datetime.now(UTC))
                .order_by(invoice_email.c.next_attempt_at, invoice_email.c.id)
                .limit(1)
                .with_for_update(of=invoice_email, skip_locked=True)
            )
        ).first()
        if row is None:
            return False
        attempts = row.attempts + 1
        try:
            message = build_message(
                sender=settings.invoice_from,
                reply_to=settings.invoice_reply_to,
                recipient=row.recipient,
                recipient_name=row.recipient_name,
                subject=row.subject,
                text=row.body_text,
                html=row.body_html,
                message_id=row.message_id,
            )
            await send(settings, message, [row.recipient, *row.bcc])
        except RefusedEmail as exc:
            log.error("invoice e-mail %s refused: %s", row.message_id, exc)
            await conn.execute(
                update(invoice_email)
                .where(invoice_email.c.id == row.id)
                .values(status="refused", attempts=attempts, last_error=str(exc))
            )
            return True
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            delay = retry_delay(attempts, settings)
            log.warning(
                "invoice e-mail %s not sent (attempt %d), retrying in %s: %s", row.message_id, attempts, delay, exc
            )
            await conn.execute(
                update(invoice_email)
                .where(invoice_email.c.id == row.id)
                .values(
                    attempts=attempts,
                    last_error=f"{type(exc).__name__}: {exc}",
                    next_attempt_at=datetime.now(UTC) + delay,
                )
            )
            return True
        await conn.execute(
            update(invoice_email)
            .where(invoice_email.c.id == row.id)
            .values(status="sent", attempts=attempts, sent_at=datetime.now(UTC), last_error=None)
        )
        uow = UnitOfWork(conn, context.outbox, context.service)
        uow.publish(
            InvoiceSent(
                order_reference=row.order_reference,
                custom_order_reference=row.custom_order_reference,
                invoice_reference=row.invoice_reference,
                recipient=row.recipient,
                bcc_count=len(row.bcc),
                purpose=row.purpose,
                message_id=row.message_id,
                correlation_id=row.correlation_id,
                causation_id=row.request_event_id,  # the resend request it answers, if any
            )
        )
        await uow.flush()
    return True


async def deliver_emails(context: ServiceContext, stop: asyncio.Event) -> None:
    """Worker loop: send due e-mails until stopped."""
    backoff = 0.5
    while not stop.is_set():
        try:
            handled = await deliver_one(context)
            backoff = 0.5
        except Exception as exc:
            log.warning("e-mail delivery loop failed, retrying in %.1fs: %s", backoff, exc)
            handled = False
            backoff = min(backoff * 2, 30.0)
        if not handled:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff if backoff > 0.5 else 0.5)
