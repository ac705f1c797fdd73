"""The figures of an invoice, computed from the order: pure, no I/O."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from schemas import OrderCreated


@dataclass(frozen=True)
class InvoiceLine:
    sku: str
    name: str
    quantity: int
    unit_price: int
    line_total: int
    tax_rate: Decimal


@dataclass(frozen=True)
class Expense:
    name: str
    amount: int
    tax_rate: Decimal


@dataclass(frozen=True)
class InvoiceFigures:
    lines: list[InvoiceLine]
    expenses: list[Expense]
    subtotal: int
    expense_total: int
    tax_by_rate: dict[Decimal, int] = field(default_factory=dict)
    tax_total: int = 0
    grand_total: int = 0


def _tax_in(amount: int, rate: Decimal, gross: bool) -> int:
    """Tax contained in (gross) or added to (net) an amount in minor units, rounded half up."""
    if rate == 0:
        return 0
    tax = amount * rate / (100 + rate) if gross else amount * rate / 100
    return int(tax.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def compute_figures(order: OrderCreated) -> InvoiceFigures:
    gross = order.price_mode == "GROSS_MODE"
    lines = [
        InvoiceLine(
            sku=line.sku,
            name=line.name,
            quantity=line.quantity,
            unit_price=line.unit_price,
            line_total=line.unit_price * line.quantity,
            tax_rate=Decimal(str(line.tax_rate)),
        )
        for line in order.lines
    ]
    # One expense per shipment: lines sharing address, method and date ship together.
    shipments: dict[tuple[str, str, str], Expense] = {}
    for line in order.lines:
        shipment = line.shipment
        key = (shipment.address.model_dump_json(), shipment.method.key, str(shipment.requested_delivery_date))
        shipments.setdefault(
            key, Expense(shipment.method.name, shipment.method.price, Decimal(str(shipment.method.tax_rate)))
        )
    expenses = list(shipments.values())
    tax_by_rate: dict[Decimal, int] = defaultdict(int)
    for item in lines:
        tax_by_rate[item.tax_rate] += _tax_in(item.line_total, item.tax_rate, gross)
    for expense in expenses:
        tax_by_rate[expense.tax_rate] += _tax_in(expense.amount, expense.tax_rate, gross)
    subtotal = sum(item.line_total for item in lines)
    expense_total = sum(expense.amount for expense in expenses)
    tax_total = sum(tax_by_rate.values())
    grand_total = subtotal + expense_total + (0 if gross else tax_total)
    return InvoiceFigures(
        lines=lines,
        expenses=expenses,
        subtotal=subtotal,
        expense_total=expense_total,
        tax_by_rate={rate: amount for rate, amount in sorted(tax_by_rate.items()) if amount},
        tax_total=tax_total,
        grand_total=grand_total,
    )
