"""Sample orders, as a checkout would publish them."""

from __future__ import annotations

import datetime as dt
import uuid

from schemas import Address, Customer, OrderPlaced, PlacedLine, Shipment, ShipmentMethod, Totals

STANDARD = ShipmentMethod(key="dhl_standard", name="DHL Standard", carrier="DHL", price=490, tax_rate=19)
EXPRESS = ShipmentMethod(key="dhl_express", name="DHL Express", carrier="DHL", price=1290, tax_rate=19)


def _address(first: str, last: str, street: str, zip_code: str, city: str) -> Address:
    return Address(first_name=first, last_name=last, address1=street, zip_code=zip_code, city=city, country="DE")


def _totals(lines: list[PlacedLine]) -> Totals:
    subtotal = sum(line.unit_price * line.quantity for line in lines)
    expenses = {
        (
            line.shipment.address.model_dump_json(),
            line.shipment.method.key,
            line.shipment.requested_delivery_date,
        ): line.shipment.method.price
        for line in lines
    }
    expense_total = sum(expenses.values())
    grand_total = subtotal + expense_total
    tax_total = round(grand_total * 19 / 119)
    return Totals(subtotal=subtotal, expense_total=expense_total, tax_total=tax_total, grand_total=grand_total)


def sample_order(number: int, *, store: str = "DE", run: str | None = None) -> OrderPlaced:
    """A realistic order. Every third order ships to two addresses, one of them by express on a date."""
    run = run or uuid.uuid4().hex[:6].upper()
    home = _address("Anna", "Schmidt", "Julie-Wolfthorn-Straße 1", "10115", "Berlin")
    office = _address("Anna", "Schmidt", "Friedrichstraße 68", "10117", "Berlin")
    customer = Customer(
        customer_reference=f"{store}--CUST-{number % 7 + 1}",
        email=f"customer{number}@example.com",
        first_name="Anna",
        last_name="Schmidt",
        salutation="Ms",
    )
    home_standard = Shipment(address=home, method=STANDARD)
    lines = [
        PlacedLine(
            sku="SKU-TSHIRT-M",
            name="Organic T-shirt, M",
            quantity=2,
            unit_price=1999,
            tax_rate=19,
            shipment=home_standard,
        ),
        PlacedLine(
            sku="SKU-PALLET-WATER",
            name="Pallet of water",
            quantity=3,
            unit_price=4999,
            tax_rate=19,
            is_quantity_splittable=False,
            shipment=home_standard,
        ),
    ]
    if number % 3 == 0:
        lines.append(
            PlacedLine(
                sku="SKU-LAPTOP-14",
                name='Laptop 14"',
                quantity=1,
                unit_price=89900,
                tax_rate=19,
                shipment=Shipment(
                    address=office, method=EXPRESS, requested_delivery_date=dt.date.today() + dt.timedelta(days=3)
                ),
            )
        )
    return OrderPlaced(
        order_reference=f"{store}--{run}-{number}",
        custom_order_reference=f"PO-{run}-{number}" if number % 2 else None,
        store=store,
        locale="de_DE" if number % 2 else "en_US",
        currency="EUR",
        customer=customer,
        billing_address=home,
        payment_method="dummyPaymentInvoice",
        lines=lines,
        totals=_totals(lines),
    )
