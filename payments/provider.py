"""What a payment provider offers Voltpay, whatever its protocol.

Create a payment for one of our orders (→ a URL to open or show as a QR code), read an
asynchronous notification (verified, or refused with the reason), ask about an order (the
polling fallback for a site the provider's notifications cannot reach) and refund one.
Amounts are Decimal yuan with 2 decimals; our order number is the idempotency key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Protocol

# What a provider says about a payment: paid (money taken), waiting (not paid yet), closed (it
# will not be paid: timed out, cancelled or fully refunded), unknown (the provider has no
# such order, e.g. a QR code nobody scanned yet).
TradeState = Literal["paid", "waiting", "closed", "unknown"]


class ProviderError(Exception):
    """The provider could not be reached, or refused a request; the message says what it said."""


class NotificationRefused(Exception):
    """A notification that is not the provider's (bad or missing signature, another merchant)."""


@dataclass(frozen=True)
class CreatedPayment:
    pay_url: str  # a page to open, or the content of the QR code to scan


@dataclass(frozen=True)
class TradeStatus:
    state: TradeState
    order_no: str
    trade_no: str = ""
    amount: Decimal | None = None  # what the provider says was (or is to be) paid


@dataclass(frozen=True)
class Notification:
    """A verified notification: what the provider asserts about one of our orders."""

    order_no: str
    status: TradeStatus
    # The provider's event name, kept for the log (e.g. TRADE_SUCCESS).
    event: str


class PaymentProvider(Protocol):
    # Our name for the provider: it prefixes its trade numbers in the ledger and names its
    # notification endpoint (/pay/notify/<name>).
    name: str
    # The exact body the provider expects when we accepted a notification.
    ack_body: str

    def create(self, *, order_no: str, amount: Decimal, subject: str) -> CreatedPayment: ...

    def read_notification(self, form: Mapping[str, str]) -> Notification:
        """Verify and read a notification; raises NotificationRefused."""
        ...

    def query(self, order_no: str) -> TradeStatus: ...

    def refund(self, *, order_no: str, amount: Decimal, request_no: str, reason: str) -> None:
        """Give `amount` back for a paid order; the same `request_no` never refunds twice."""
        ...
