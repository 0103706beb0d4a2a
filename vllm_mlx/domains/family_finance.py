"""Finance documents: ``document.invoice``, ``document.receipt``, ``document.utility-bill``.

Fields follow the public vlmrun-hub schemas (``vlmrun.hub.schemas.document.*``), with every
string, number and list bounded (see :mod:`.fields`); rarely used free-form dictionaries
(``others``, ``additional_charges``) are left out because they cannot be bounded.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .fields import Amount, Count, IsoDate, IsoDateTime, Line, Name, Rate, ShortText, Strict
from .spec import DomainSpec


class Address(Strict):
    street: Line | None = Field(None, description="Street address")
    city: Name | None = Field(None, description="City")
    state: Name | None = Field(None, description="State, province, or region")
    postal_code: ShortText | None = Field(None, description="Postal or ZIP code")
    country: Name | None = Field(None, description="Country")


class InvoiceItem(Strict):
    description: Line | None = Field(None, description="Description or name of the item")
    quantity: Count | None = Field(None, description="Quantity of the item")
    unit_price: Amount | None = Field(None, description="Unit price or rate of the item")
    total_price: Amount | None = Field(None, description="Total price of this line item")


class Invoice(Strict):
    invoice_id: ShortText | None = Field(None, description="Unique invoice identifier")
    invoice_issue_date: IsoDate | None = Field(None, description="Date the invoice was issued")
    invoice_due_date: IsoDate | None = Field(None, description="Date payment is due")
    order_id: ShortText | None = Field(None, description="Related order identifier")
    issuer_name: Name | None = Field(None, description="Name of the invoice issuer")
    issuer_address: Address | None = Field(None, description="Address of the issuer")
    issuer_email: Name | None = Field(None, description="Email address of the issuer")
    issuer_phone: ShortText | None = Field(None, description="Phone number of the issuer")
    customer_name: Name | None = Field(None, description="Name of the invoice recipient")
    customer_email: Name | None = Field(None, description="Email address of the recipient")
    customer_billing_address: Address | None = Field(None, description="Billing address")
    customer_shipping_address: Address | None = Field(None, description="Shipping address")
    items: Annotated[list[InvoiceItem], Field(max_length=100)] | None = Field(
        None, description="Line items or services on the invoice")
    currency: ShortText | None = Field(None, description="3-letter currency code, e.g. USD")
    subtotal: Amount | None = Field(None, description="Total of the line items before tax")
    tax_amount: Amount | None = Field(None, description="Total tax amount")
    total_amount: Amount | None = Field(None, description="Final total of the invoice")
    payment_terms: Line | None = Field(None, description="Payment terms, e.g. 'Net 30'")
    notes: Line | None = Field(None, description="Other notes on the invoice")


class ReceiptItem(Strict):
    description: Line = Field(..., description="Description or name of the item")
    quantity: Count | None = Field(None, description="Quantity of the item")
    unit_price: Amount | None = Field(None, description="Unit price of the item")
    total_price: Amount | None = Field(None, description="Total price of the item")


class PaymentMethod(Strict):
    type: ShortText = Field(..., description="Type of payment, e.g. cash or credit card")
    card_last_4: Annotated[str, Field(pattern=r"^[0-9]{4}$")] | None = Field(
        None, description="Last 4 digits of the card if applicable")
    card_type: ShortText | None = Field(None, description="Type of card if applicable")


class Receipt(Strict):
    receipt_id: ShortText | None = Field(None, description="Unique receipt identifier")
    transaction_date: IsoDateTime | None = Field(None, description="Date and time of sale")
    merchant_name: Name | None = Field(None, description="Name of the merchant")
    merchant_address: Address | None = Field(None, description="Address of the merchant")
    merchant_phone: ShortText | None = Field(None, description="Phone number of the merchant")
    items: Annotated[list[ReceiptItem], Field(max_length=100)] = Field(
        ..., description="Items purchased")
    subtotal: Amount | None = Field(None, description="Subtotal of the purchase")
    tax: Amount | None = Field(None, description="Tax amount")
    total: Amount = Field(..., description="Total amount of the purchase")
    currency: ShortText = Field(..., description="Currency of the transaction")
    payment_method: PaymentMethod = Field(..., description="Method of payment")
    tip_amount: Amount | None = Field(None, description="Tip amount if applicable")
    notes: Line | None = Field(None, description="Other notes on the receipt")


class ChargeDetail(Strict):
    description: Line | None = Field(None, description="Description of the charge")
    amount: Amount | None = Field(None, description="Amount charged")
    usage: ShortText | None = Field(None, description="Usage, e.g. '31 kWh'")
    rate: Rate | None = Field(None, description="Rate per unit")


class UtilityBill(Strict):
    provider_name: Name | None = Field(None, description="Name of the utility provider")
    provider_address: Address | None = Field(None, description="Address of the provider")
    account_number: ShortText | None = Field(None, description="Utility account number")
    statement_date: IsoDate | None = Field(None, description="Date the bill was issued")
    service_for: Name | None = Field(None, description="Person or entity billed")
    service_address: Address | None = Field(None, description="Where the service is provided")
    billing_period_start: IsoDate | None = Field(None, description="Start of billing period")
    billing_period_end: IsoDate | None = Field(None, description="End of billing period")
    date_due: IsoDate | None = Field(None, description="Payment due date")
    currency: ShortText | None = Field(None, description="3-letter currency code")
    amount_due: Amount | None = Field(None, description="Total amount payable by the due date")
    previous_balance: Amount | None = Field(None, description="Balance from the last bill")
    current_charges: Amount | None = Field(None, description="New charges this cycle")
    breakdown_of_charges: Annotated[list[ChargeDetail], Field(max_length=50)] | None = Field(
        None, description="Itemized charges, taxes and fees")


_EXTRACT = ("Extract the {what} shown in the image(s) into the JSON fields. Copy values exactly "
            "as printed; use null for anything that is not shown.")

DOMAINS = (
    DomainSpec(
        name="document.invoice", model=Invoice,
        description="Invoice extraction: issuer, customer, line items, totals and terms.",
        prompt=_EXTRACT.format(what="invoice"), max_tokens=4096),
    DomainSpec(
        name="document.receipt", model=Receipt,
        description="Receipt extraction: merchant, items, totals and payment method.",
        prompt=_EXTRACT.format(what="receipt"), max_tokens=4096),
    DomainSpec(
        name="document.utility-bill", model=UtilityBill,
        description="Utility bill extraction: provider, account, billing period and charges.",
        prompt=_EXTRACT.format(what="utility bill"), max_tokens=4096),
)
