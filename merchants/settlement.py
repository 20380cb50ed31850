"""Payout arithmetic and the bank payout file (SPEC §7, §13 "Runs and close"). Pure: no Flask,
no database.

A merchant's payout for a business day is the money its payable account received that day
(succeeded charges, static-QR credits included) minus the refunds posted that day, minus the
merchant discount. The discount is floored per charge (`amount * rate_bp // 10000`), so it is
never more than the rate of any single sale and never a fraction of a đồng. Refunds are
deducted in the payout of the day they happen; when they (and the discount) exceed the day's
charges, nothing is paid and the balance carries to the next day's batch.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from payments.vietqr import fold_ascii

BASIS_POINTS = 10_000
PAYOUT_FILE_COLUMNS = (
    "batch_id",
    "business_date",
    "value_date",
    "merchant_id",
    "beneficiary_name",
    "bank_bin",
    "bank_name",
    "account_number",
    "amount",
    "currency",
    "description",
    "reference",
)


@dataclass(frozen=True)
class PayoutTotals:
    charges_count: int
    charges_amount: int
    refunds_amount: int
    gross_amount: int  # charges minus refunds: what leaves the merchant's payable account
    discount_amount: int
    net_amount: int  # what the bank sends to the merchant; 0 when nothing is due

    @property
    def due(self) -> bool:
        return self.net_amount > 0


@dataclass(frozen=True)
class PayoutLine:
    """One line of the bank payout file."""

    batch_id: int
    business_date: date
    value_date: date
    merchant_id: int
    beneficiary_name: str
    bank_bin: str
    bank_name: str
    account_number: str
    amount: int
    description: str


def discount_of(amount: int, rate_bp: int) -> int:
    """The merchant discount on one charge, floored to the đồng."""
    if not 0 <= rate_bp <= BASIS_POINTS:
        raise ValueError("a discount rate is 0..10000 basis points")
    return amount * rate_bp // BASIS_POINTS


def payout_totals(charges: Sequence[int], refunds: Sequence[int], rate_bp: int) -> PayoutTotals:
    """Totals of one batch from its charges and refunds (positive amounts).

    Guarantees: gross = Σcharges − Σrefunds; discount = Σ floor(charge · rate / 10000);
    net = gross − discount when that is positive, else 0 (nothing due, the whole batch
    carries over).
    """
    if any(amount <= 0 for amount in (*charges, *refunds)):
        raise ValueError("charges and refunds are positive amounts")
    charged, refunded = sum(charges), sum(refunds)
    discount = sum(discount_of(amount, rate_bp) for amount in charges)
    gross = charged - refunded
    return PayoutTotals(
        charges_count=len(charges),
        charges_amount=charged,
        refunds_amount=refunded,
        gross_amount=gross,
        discount_amount=discount,
        net_amount=max(gross - discount, 0),
    )


def bank_text(text: str) -> str:
    """Upper-case ASCII, as bank payout files and statements carry names and notes."""
    return " ".join(fold_ascii(text).upper().split())


def payout_description(business_date: date, short_name: str) -> str:
    """The transfer note the bank statement shows: `PAYOUT 2026-11-21 CHO SAU`."""
    return f"PAYOUT {business_date.isoformat()} {bank_text(short_name)}"


def payout_csv(lines: Iterable[PayoutLine]) -> str:
    """The bank payout file (docs/PAYOUT_FILE.md): UTF-8 CSV, RFC 4180 quoting, CRLF."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(PAYOUT_FILE_COLUMNS)
    for line in lines:
        writer.writerow(
            [
                line.batch_id,
                line.business_date.isoformat(),
                line.value_date.isoformat(),
                line.merchant_id,
                bank_text(line.beneficiary_name),
                line.bank_bin,
                line.bank_name,
                line.account_number,
                line.amount,
                "VND",
                line.description,
                f"payout:{line.batch_id}",
            ]
        )
    return buffer.getvalue()
