"""Payment orders: create one, and credit the account exactly once when it is confirmed paid.

A payment is confirmed by the provider's signed notification or by asking the provider (the
poller, for sites its notifications cannot reach). Both go through `confirm_payment`, which
row-locks the order (FOR UPDATE on PostgreSQL; SQLite holds its write lock from BEGIN), so a
notification racing a poll finds the order already paid and credits nothing; the sale's ledger
idempotency key (the provider's trade number) backs that up. The order's state change and the
sale — with the close of a tripped meter and the recharge message that `sell` queues — commit
together or not at all.

The online channel sells as a built-in operator `online` whose role grants only "sell": the
ledger, the audit log and the sales reports name it like any cashier, and taking "sell" from
the role on the roles page stops online crediting (paid orders then wait as `failed`).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing import audit, operators, sales
from billing.errors import BillingError, NotFound
from billing.money import parse_amount
from billing.policy import BillingPolicy
from payments.provider import NotificationRefused, PaymentProvider, ProviderError, TradeStatus
from schema.db import unit_of_work
from schema.models import Account, Operator, PaymentNotification, PaymentOrder, Role

log = logging.getLogger(__name__)

ONLINE_USERNAME = operators.SYSTEM_OPERATORS[0]
ONLINE_ROLE = ONLINE_USERNAME
# Not an argon2 hash, so no password ever matches it: nobody logs in as the online channel.
NO_PASSWORD = "!"
CENT = Decimal("0.01")

Outcome = Literal["credited", "repeated", "ignored", "failed", "refused"]


class PaymentError(BillingError):
    """An online payment that cannot go ahead; the message is for the tenant or operator."""


@dataclass(frozen=True)
class Confirmation:
    outcome: Outcome
    reason: str
    order: PaymentOrder | None

    @property
    def acknowledged(self) -> bool:
        """Whether the provider is told we took the notification (else it sends it again)."""
        return self.outcome != "refused"


def online_operator(session: Session, *, now: datetime) -> Operator:
    """The built-in operator that online payments sell as, created on first use."""
    found = session.scalar(select(Operator).where(Operator.username == ONLINE_USERNAME))
    if found is not None:
        return found
    try:
        with session.begin_nested():
            role = session.get(Role, ONLINE_ROLE)
            if role is None:
                role = Role(name=ONLINE_ROLE, permissions=["sell"], builtin=True)
                session.add(role)
            operator = Operator(
                username=ONLINE_USERNAME, display_name="Online payments",
                password_hash=NO_PASSWORD, role=ONLINE_ROLE, role_info=role, created_at=now,
            )
            session.add(operator)
            session.flush()
            audit.record(session, at=now, operator=None, action="operator.create",
                         target=ONLINE_USERNAME, role=ONLINE_ROLE)
    except IntegrityError:
        # Another transaction created it at the same moment.
        return session.scalars(
            select(Operator).where(Operator.username == ONLINE_USERNAME)
        ).one()
    return operator


def new_order_no(now: datetime) -> str:
    """Ours toward the provider (out_trade_no): time-ordered, unguessable, ≤ 64 characters."""
    return f"VP{now:%Y%m%d%H%M%S}{secrets.token_hex(6).upper()}"


def create_order(
    session: Session,
    *,
    account_id: int,
    amount: object,
    now: datetime,
    provider: PaymentProvider | None = None,
    policy: BillingPolicy | None = None,
) -> PaymentOrder:
    """Start an online recharge of an open account: the order, with the URL (or QR content)
    the tenant pays at. The sale's limits are checked now, so a tenant is not let pay for a
    recharge the sale would refuse."""
    if provider is None or policy is None:
        from payments.config import configured_provider, effective_policy

        provider = provider or configured_provider()
        policy = policy or effective_policy(session)
    value = parse_amount(amount, "Recharge amount")
    if value <= 0:
        raise PaymentError("Recharge amount must be greater than 0")
    value = value.quantize(CENT)
    if value > policy.max_sale_amount:
        raise PaymentError(
            f"Recharge amount {value} is above the per-sale maximum of {policy.max_sale_amount}"
        )
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound(f"Account {account_id} does not exist")
    if account.status != "open":
        raise PaymentError(f"Account {account.number} is closed; it cannot be recharged")
    if account.balance + value > policy.hoarding_limit:
        room = max(policy.hoarding_limit - account.balance, Decimal(0)).quantize(CENT)
        raise PaymentError(
            f"This recharge would take the balance over the limit of {policy.hoarding_limit}; "
            f"at most {room} can be paid now"
        )
    order = PaymentOrder(
        order_no=new_order_no(now), account_id=account.id, amount=value,
        provider=provider.name, state="created", created_at=now, updated_at=now,
    )
    session.add(order)
    session.flush()
    subject = f"Electricity {account.number} 电费充值"
    order.pay_url = provider.create(order_no=order.order_no, amount=value, subject=subject).pay_url
    return order


def find_order(session: Session, order_no: str) -> PaymentOrder | None:
    return session.scalar(select(PaymentOrder).where(PaymentOrder.order_no == order_no))


def _lock_order(session: Session, order_no: str) -> PaymentOrder | None:
    return session.scalar(
        select(PaymentOrder)
        .where(PaymentOrder.order_no == order_no)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def confirm_payment(
    session: Session,
    provider_name: str,
    status: TradeStatus,
    *,
    now: datetime,
    policy: BillingPolicy,
) -> Confirmation:
    """Apply what the provider says about an order: credit it once when paid, close it when
    the provider closed it, refuse what does not match the order."""
    order = _lock_order(session, status.order_no)
    if order is None:
        return Confirmation("refused", f"unknown order {status.order_no!r}", None)
    if order.provider != provider_name:
        return Confirmation("refused", f"order {order.order_no} is not a {provider_name} order",
                            order)
    if status.state != "paid":
        if status.state == "closed" and order.state == "created":
            order.state, order.note, order.updated_at = "closed", "closed by the provider", now
            return Confirmation("ignored", "closed by the provider", order)
        return Confirmation("ignored", f"trade is {status.state}", order)
    if order.state in ("paid", "failed", "refunded"):
        if status.trade_no and order.trade_no != status.trade_no:
            return Confirmation(
                "refused", f"order {order.order_no} was paid by trade {order.trade_no}, "
                f"not {status.trade_no}", order)
        return Confirmation("repeated", f"order {order.order_no} is already {order.state}", order)
    if status.amount != order.amount:
        return Confirmation(
            "refused", f"paid amount {status.amount} differs from the order's {_cents(order)}",
            order)
    if not status.trade_no:
        return Confirmation("refused", "no trade number", order)
    # A payment that arrives after we closed the order is still money received: credit it.
    order.trade_no, order.paid_at, order.updated_at = status.trade_no, now, now
    try:
        with session.begin_nested():
            result = sales.sell(
                session, account_id=order.account_id, amount=order.amount,
                payment_method="online", idempotency_key=f"{provider_name}:{status.trade_no}",
                operator=online_operator(session, now=now), now=now, policy=policy,
            )
    except BillingError as exc:
        order.state = "failed"
        order.note = f"paid but not credited: {exc}"
        log.error("order %s was paid (%s) but not credited: %s", order.order_no,
                  status.trade_no, exc)
        return Confirmation("failed", order.note, order)
    order.state, order.ledger_entry_id, order.note = "paid", result.entry.id, ""
    return Confirmation("credited", f"credited {_cents(order)}", order)


def _cents(order: PaymentOrder) -> Decimal:
    return order.amount.quantize(CENT)


def handle_notification(
    session: Session,
    provider: PaymentProvider,
    form: Mapping[str, str],
    *,
    body: str,
    now: datetime,
    policy: BillingPolicy,
) -> Confirmation:
    """Verify a notification, apply it, and log it with its outcome (commit the session)."""
    try:
        notification = provider.read_notification(form)
    except NotificationRefused as exc:
        result = Confirmation("refused", str(exc), None)
        verified = False
    else:
        result = confirm_payment(session, provider.name, notification.status, now=now,
                                 policy=policy)
        verified = True
    session.add(PaymentNotification(
        provider=provider.name, order_no=str(form.get("out_trade_no", ""))[:64], body=body,
        verified=verified, outcome=result.outcome, reason=result.reason, received_at=now,
    ))
    if result.outcome == "refused":
        log.warning("%s notification refused: %s", provider.name, result.reason)
    return result


def unpaid_orders(
    session: Session, provider_name: str, *, created_before: datetime
) -> list[tuple[str, datetime]]:
    """Order number and creation time of the provider's unpaid orders, oldest first."""
    return list(session.execute(
        select(PaymentOrder.order_no, PaymentOrder.created_at)
        .where(PaymentOrder.state == "created", PaymentOrder.provider == provider_name,
               PaymentOrder.created_at <= created_before)
        .order_by(PaymentOrder.created_at)
    ))


def close_unpaid(session: Session, order_no: str, *, now: datetime, reason: str) -> bool:
    """Close an order that was never paid; a payment arriving later still credits it."""
    order = _lock_order(session, order_no)
    if order is None or order.state != "created":
        return False
    order.state, order.note, order.updated_at = "closed", reason, now
    return True


def refund_order(
    session: Session,
    *,
    order_no: str,
    reason: str,
    operator: Operator | None,
    now: datetime,
    policy: BillingPolicy,
    provider: PaymentProvider,
) -> PaymentOrder:
    """Give an online payment back through the provider (permission "refund").

    A credited order is first taken off the balance as a refund entry (refused when the tenant
    has already spent it); a failed one was never credited. The provider's refund request
    number is derived from the order, so repeating this never refunds twice at the provider.
    """
    operators.require(operator, "refund")
    order = _lock_order(session, order_no)
    if order is None:
        raise NotFound(f"Order {order_no} does not exist")
    if order.state not in ("paid", "failed"):
        raise PaymentError(f"Order {order_no} is {order.state}; only a paid order is refunded")
    if not reason.strip():
        raise PaymentError("A refund needs a reason")
    if order.state == "paid":
        sales.refund(
            session, account_id=order.account_id, amount=order.amount, reason=reason,
            idempotency_key=f"order:{order.order_no}", operator=operator, now=now,
            policy=policy, payment_method="online",
        )
    else:
        audit.record(session, at=now, operator=operator, action="payment.refund",
                     target=order.order_no, amount=order.amount, reason=reason.strip())
    provider.refund(order_no=order.order_no, amount=order.amount,
                    request_no=f"{order.order_no}R", reason=reason.strip())
    order.state, order.updated_at = "refunded", now
    return order


def poll_unpaid(
    database_url: str,
    provider: PaymentProvider,
    *,
    now: datetime,
    policy: BillingPolicy,
    after: timedelta,
    give_up_after: timedelta,
) -> dict[str, Outcome | Literal["closed", "waiting", "error"]]:
    """Ask the provider about every unpaid order older than `after`; credit the paid ones and
    close those still unpaid after `give_up_after`. Each order in its own transaction, and no
    transaction is open while the provider is asked."""
    with unit_of_work(database_url) as session:
        due = unpaid_orders(session, provider.name, created_before=now - after)
    results: dict[str, Outcome | Literal["closed", "waiting", "error"]] = {}
    for order_no, created_at in due:
        try:
            status = provider.query(order_no)
        except ProviderError as exc:
            log.warning("asking %s about order %s: %s", provider.name, order_no, exc)
            results[order_no] = "error"
            continue
        with unit_of_work(database_url) as session:
            if status.state in ("paid", "closed"):
                results[order_no] = confirm_payment(
                    session, provider.name, status, now=now, policy=policy
                ).outcome
            elif created_at <= now - give_up_after and close_unpaid(
                session, order_no, now=now,
                reason=f"not paid within {give_up_after.total_seconds() / 60:g} minutes",
            ):
                results[order_no] = "closed"
            else:
                results[order_no] = "waiting"
    return results
