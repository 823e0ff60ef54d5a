"""Exact money arithmetic: Decimal only, quantized where the ledger needs it."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from billing.errors import BillingError

CENT = Decimal("0.01")
CHARGE_QUANTUM = Decimal("0.0001")  # interval charges carry 4 places
ZERO = Decimal("0")


def to_charge(amount: Decimal) -> Decimal:
    return amount.quantize(CHARGE_QUANTUM, rounding=ROUND_HALF_UP)


def parse_amount(value: object, what: str = "Amount") -> Decimal:
    """A user-entered amount of money with at most 2 decimal places."""
    try:
        amount = Decimal(str(value).strip().replace(",", ""))
    except (InvalidOperation, ValueError):
        raise BillingError(f"{what} must be a number, for example 100.00") from None
    if not amount.is_finite():
        raise BillingError(f"{what} must be a number, for example 100.00")
    if amount != amount.quantize(CENT):
        raise BillingError(f"{what} can have at most 2 decimal places")
    return amount.quantize(CENT)


def format_money(amount: Decimal, places: int = 2) -> str:
    return f"{amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP):,}"
