"""Which process an order runs: the name in order.placed, else the payment method's, else the default."""

from __future__ import annotations

import pytest

from services.order_state.process_catalog import ProcessCatalog, UnknownProcess
from services.runtime.settings import Settings
from tests.conftest import FIXTURE_PROCESSES


def catalog(**settings) -> ProcessCatalog:
    return ProcessCatalog.load(Settings(process_dirs=[str(FIXTURE_PROCESSES)], **settings))


def test_the_order_names_its_process():
    assert catalog().choose("Prepayment01", "dummyPaymentInvoice") == "Prepayment01"


def test_the_payment_method_chooses_when_the_order_does_not():
    chosen = catalog(payment_method_processes={"prepayment": "Prepayment01"})
    assert chosen.choose(None, "prepayment") == "Prepayment01"
    assert chosen.choose(None, "creditCard") == "OmsDefault01"


def test_the_default_process_is_a_setting():
    assert catalog(default_process="GiftCardExpress01").choose(None, "creditCard") == "GiftCardExpress01"


def test_unknown_names_are_refused_clearly():
    with pytest.raises(UnknownProcess, match="unknown process 'Nope01'; known: GiftCardExpress01, OmsDefault01"):
        catalog().choose("Nope01", "x")
    with pytest.raises(UnknownProcess, match="settings name processes that are not loaded: Missing01"):
        catalog(payment_method_processes={"x": "Missing01"})
