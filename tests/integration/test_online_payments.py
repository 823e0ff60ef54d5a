"""Online recharge against a local Alipay-protocol gateway with its own generated keys
(payments/sandbox.py): the tenant pays, the signed notification credits the account once, a
tripped meter's close is queued; repeats, races, forgeries, wrong amounts and unknown orders
credit nothing more and are logged."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
import uvicorn
from Crypto.PublicKey import RSA
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import ApiConfig, create_app
from billing import operators
from billing.errors import BillingError
from collector.tsdb_sql import SqlReadingStore
from payments import orders
from payments.alipay import AlipayProvider
from payments.sandbox import SandboxGateway
from payments.signing import generate_key, sign_params
from schema.db import unit_of_work
from schema.models import (
    Account,
    Command,
    LedgerEntry,
    Operator,
    OutboxMessage,
    PaymentNotification,
    PaymentOrder,
)
from tests.factories import POLICY, T0, make_site, open_account

APP_ID = "2021000000000001"
TOKEN = "integration-token-1"


@pytest.fixture(scope="module")
def merchant_key() -> RSA.RsaKey:
    return generate_key()


@pytest.fixture(scope="module")
def gateway_key() -> RSA.RsaKey:
    return generate_key()


@pytest.fixture
def sandbox(merchant_key: RSA.RsaKey, gateway_key: RSA.RsaKey) -> Iterator[SandboxGateway]:
    gateway = SandboxGateway(gateway_key=gateway_key, merchant_public_key=merchant_key.public_key(),
                             app_id=APP_ID, retry_s=(0.2, 0.5, 1.0)).start()
    yield gateway
    gateway.stop()


def alipay(sandbox: SandboxGateway, merchant_key: RSA.RsaKey, gateway_key: RSA.RsaKey,
           notify_url: str = "") -> AlipayProvider:
    return AlipayProvider(app_id=APP_ID, gateway_url=f"{sandbox.url}/gateway.do",
                          private_key=merchant_key, alipay_public_key=gateway_key.public_key(),
                          notify_url=notify_url)


@pytest.fixture
def provider(sandbox: SandboxGateway, merchant_key: RSA.RsaKey,
             gateway_key: RSA.RsaKey) -> AlipayProvider:
    return alipay(sandbox, merchant_key, gateway_key)


def tripped_shop(url: str) -> tuple[int, int]:
    """A shop with no credit left: in arrears, its meter tripped. (account id, meter id)"""
    with unit_of_work(url) as s:
        site = make_site(s)
        account_id = open_account(s, site, *site.meters)
        s.get_one(Account, account_id).phone = "13800000001"
        site.meters[0].relay = "open"
        return account_id, site.meters[0].id


def new_order(url: str, provider: AlipayProvider, account_id: int, amount: str = "50.00") -> str:
    with unit_of_work(url) as s:
        return orders.create_order(s, account_id=account_id, amount=amount, now=T0,
                                   provider=provider, policy=POLICY).order_no


def balance(url: str, account_id: int) -> Decimal:
    with unit_of_work(url) as s:
        return s.get_one(Account, account_id).balance


def sales_of(url: str, account_id: int) -> list[tuple[Decimal, str | None, str]]:
    with unit_of_work(url) as s:
        return [
            (e.amount, e.payment_method, s.get_one(Operator, e.operator_id).username)
            for e in s.scalars(select(LedgerEntry).where(
                LedgerEntry.account_id == account_id, LedgerEntry.kind == "sale"))
        ]


def notifications(url: str) -> list[tuple[bool, str, str]]:
    with unit_of_work(url) as s:
        return [(n.verified, n.outcome, n.reason) for n in s.scalars(
            select(PaymentNotification).order_by(PaymentNotification.id))]


def order_state(url: str, order_no: str) -> str:
    with unit_of_work(url) as s:
        order = orders.find_order(s, order_no)
        assert order is not None
        return order.state


def api(url: str, provider: AlipayProvider) -> TestClient:
    config = ApiConfig(database_url=url, store=SqlReadingStore(url), policy=POLICY,
                       tokens=[TOKEN], provider=provider, poll=False)
    return TestClient(create_app(config))


def post_notification(client: TestClient, form: dict[str, str]) -> httpx.Response:
    return client.post("/pay/notify/alipay", data=form)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the tenant's journey over HTTP ------------------------------------------------------


def test_pay_in_the_browser_and_the_notification_credits_the_account(
    db_url: str, sandbox: SandboxGateway, merchant_key: RSA.RsaKey, gateway_key: RSA.RsaKey
) -> None:
    account_id, meter_id = tripped_shop(db_url)
    port = free_port()
    provider = alipay(sandbox, merchant_key, gateway_key,
                      notify_url=f"http://127.0.0.1:{port}/pay/notify/alipay")
    config = ApiConfig(database_url=db_url, store=SqlReadingStore(db_url), policy=POLICY,
                       tokens=[TOKEN], provider=provider, poll=False)
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        created = httpx.post(f"{base}/api/orders", json={"account": "10001", "amount": "50.00"},
                             headers=auth)
        assert created.status_code == 201, created.text
        order = created.json()
        assert (order["state"], order["amount"], order["balance"]) == ("created", "50.00", "0.00")
        assert order["pay_url"] == f"{sandbox.url}/pay/{order['order_no']}"

        page = httpx.get(order["pay_url"])
        assert "¥ 50.00" in page.text and 'id="pay"' in page.text
        paid_page = httpx.post(order["pay_url"])  # the Pay button
        assert 'id="paid"' in paid_page.text

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            shown = httpx.get(f"{base}/api/orders/{order['order_no']}", headers=auth).json()
            if shown["state"] != "created":
                break
            time.sleep(0.1)
        assert (shown["state"], shown["balance"]) == ("paid", "50.00")
        assert sandbox.trades[order["order_no"]].notified  # we answered `success`
    finally:
        server.should_exit = True
        thread.join()

    assert sales_of(db_url, account_id) == [(Decimal("50.00"), "online", "online")]
    with unit_of_work(db_url) as s:
        close = s.scalars(select(Command).where(Command.meter_id == meter_id)).one()
        assert (close.kind, close.state) == ("close", "queued")
        assert "recharge" in s.scalars(select(OutboxMessage.kind).where(
            OutboxMessage.account_id == account_id)).all()
    assert notifications(db_url) == [(True, "credited", "credited 50.00")]


# --- notifications -----------------------------------------------------------------------


def test_a_repeated_notification_is_answered_success_and_credits_once(
    db_url: str, sandbox: SandboxGateway, provider: AlipayProvider
) -> None:
    account_id, _ = tripped_shop(db_url)
    order_no = new_order(db_url, provider, account_id)
    sandbox.pay(order_no, notify=False)
    form = sandbox.notification(order_no)
    client = api(db_url, provider)

    first, again = post_notification(client, form), post_notification(client, form)

    assert (first.status_code, first.text) == (200, "success")
    assert (again.status_code, again.text) == (200, "success")
    assert balance(db_url, account_id) == Decimal("50.00")
    assert len(sales_of(db_url, account_id)) == 1
    assert [n[1] for n in notifications(db_url)] == ["credited", "repeated"]


def test_a_forged_signature_is_refused_and_logged(
    db_url: str, sandbox: SandboxGateway, provider: AlipayProvider
) -> None:
    account_id, _ = tripped_shop(db_url)
    order_no = new_order(db_url, provider, account_id)
    sandbox.pay(order_no, notify=False)
    genuine = sandbox.notification(order_no)
    client = api(db_url, provider)

    tampered = post_notification(client, {**genuine, "trade_no": genuine["trade_no"] + "1"})
    signed_by_another = {**genuine, "sign": sign_params(genuine, generate_key())}
    other = post_notification(client, signed_by_another)
    unsigned = post_notification(client, {k: v for k, v in genuine.items() if k != "sign"})

    assert [(r.status_code, r.text) for r in (tampered, other, unsigned)] == [
        (400, "failure")] * 3
    assert balance(db_url, account_id) == Decimal("0.00")
    assert order_state(db_url, order_no) == "created"
    assert notifications(db_url) == [
        (False, "refused", "the signature does not verify with the provider's key"),
        (False, "refused", "the signature does not verify with the provider's key"),
        (False, "refused", "no signature"),
    ]
    with unit_of_work(db_url) as s:
        assert s.scalars(select(PaymentNotification.body)).first() == httpx.QueryParams(
            {**genuine, "trade_no": genuine["trade_no"] + "1"}).__str__()


def test_a_wrong_amount_is_refused_even_when_signed(
    db_url: str, sandbox: SandboxGateway, provider: AlipayProvider, gateway_key: RSA.RsaKey
) -> None:
    account_id, _ = tripped_shop(db_url)
    order_no = new_order(db_url, provider, account_id)
    sandbox.pay(order_no, notify=False)
    form = {**sandbox.notification(order_no), "total_amount": "0.01"}
    form["sign"] = sign_params(form, gateway_key)

    reply = post_notification(api(db_url, provider), form)

    assert (reply.status_code, reply.text) == (400, "failure")
    assert balance(db_url, account_id) == Decimal("0.00")
    assert notifications(db_url) == [
        (True, "refused", "paid amount 0.01 differs from the order's 50.00")]


def test_an_unknown_order_is_refused(
    db_url: str, provider: AlipayProvider, gateway_key: RSA.RsaKey
) -> None:
    account_id, _ = tripped_shop(db_url)
    form = {"notify_type": "trade_status_sync", "app_id": APP_ID, "sign_type": "RSA2",
            "out_trade_no": "VP20261102000000NOSUCH", "trade_no": "2026110222000000000001",
            "trade_status": "TRADE_SUCCESS", "total_amount": "50.00"}
    form["sign"] = sign_params(form, gateway_key)

    reply = post_notification(api(db_url, provider), form)

    assert (reply.status_code, reply.text) == (400, "failure")
    assert balance(db_url, account_id) == Decimal("0.00")
    assert notifications(db_url) == [
        (True, "refused", "unknown order 'VP20261102000000NOSUCH'")]


def test_a_payment_for_a_closed_account_is_acknowledged_and_waits_as_failed(
    db_url: str, sandbox: SandboxGateway, provider: AlipayProvider
) -> None:
    account_id, _ = tripped_shop(db_url)
    order_no = new_order(db_url, provider, account_id)
    with unit_of_work(db_url) as s:
        s.get_one(Account, account_id).status = "closed"
    sandbox.pay(order_no, notify=False)

    reply = post_notification(api(db_url, provider), sandbox.notification(order_no))

    assert reply.text == "success"  # the money did arrive: asking again would not help
    assert order_state(db_url, order_no) == "failed"
    assert notifications(db_url)[0][1] == "failed"
    assert balance(db_url, account_id) == Decimal("0.00")


# --- polling, races, refunds -------------------------------------------------------------


def test_the_poller_credits_a_payment_whose_notification_never_came(
    db_url: str, sandbox: SandboxGateway, provider: AlipayProvider
) -> None:
    account_id, _ = tripped_shop(db_url)
    paid = new_order(db_url, provider, account_id, "30.00")
    waiting = new_order(db_url, provider, account_id, "20.00")
    sandbox.pay(paid, notify=False)
    poll = {"policy": POLICY, "after": timedelta(seconds=60), "give_up_after": timedelta(hours=1)}

    assert orders.poll_unpaid(db_url, provider, now=T0 + timedelta(seconds=30), **poll) == {}
    assert orders.poll_unpaid(db_url, provider, now=T0 + timedelta(minutes=2), **poll) == {
        paid: "credited", waiting: "waiting"}
    assert balance(db_url, account_id) == Decimal("30.00")
    assert orders.poll_unpaid(db_url, provider, now=T0 + timedelta(hours=2), **poll) == {
        waiting: "closed"}
    assert order_state(db_url, waiting) == "closed"


@pytest.mark.postgres
def test_a_notification_racing_the_poll_credits_once(
    pg_url: str, sandbox: SandboxGateway, provider: AlipayProvider
) -> None:
    account_id, _ = tripped_shop(pg_url)
    numbers = [new_order(pg_url, provider, account_id, "10.00") for _ in range(6)]
    for order_no in numbers:
        sandbox.pay(order_no, notify=False)
    outcomes: list[str] = []

    def by_notification(order_no: str, start: threading.Barrier) -> None:
        form = sandbox.notification(order_no)
        start.wait()
        with unit_of_work(pg_url) as s:
            outcomes.append(orders.handle_notification(
                s, provider, form, body="", now=T0, policy=POLICY).outcome)

    def by_poll(order_no: str, start: threading.Barrier) -> None:
        status = provider.query(order_no)
        start.wait()
        with unit_of_work(pg_url) as s:
            outcomes.append(orders.confirm_payment(
                s, provider.name, status, now=T0, policy=POLICY).outcome)

    for order_no in numbers:
        start = threading.Barrier(2)
        threads = [threading.Thread(target=f, args=(order_no, start))
                   for f in (by_notification, by_poll)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    assert sorted(outcomes) == ["credited"] * 6 + ["repeated"] * 6
    assert balance(pg_url, account_id) == Decimal("60.00")
    assert len(sales_of(pg_url, account_id)) == 6


def test_a_refund_goes_back_through_the_provider_once(
    db_url: str, sandbox: SandboxGateway, provider: AlipayProvider
) -> None:
    account_id, _ = tripped_shop(db_url)
    order_no = new_order(db_url, provider, account_id)
    sandbox.pay(order_no, notify=False)
    post_notification(api(db_url, provider), sandbox.notification(order_no))

    with unit_of_work(db_url) as s:
        admin = s.scalars(select(Operator).where(Operator.username == "admin")).one()
        orders.refund_order(s, order_no=order_no, reason="paid twice by mistake", operator=admin,
                            now=T0, policy=POLICY, provider=provider)

    assert balance(db_url, account_id) == Decimal("0.00")
    assert order_state(db_url, order_no) == "refunded"
    assert sandbox.trades[order_no].status == "TRADE_CLOSED"
    with unit_of_work(db_url) as s, pytest.raises(BillingError, match="is refunded"):
        admin = s.scalars(select(Operator).where(Operator.username == "admin")).one()
        orders.refund_order(s, order_no=order_no, reason="again", operator=admin, now=T0,
                            policy=POLICY, provider=provider)


def test_orders_are_refused_before_paying_when_the_sale_would_be(
    db_url: str, provider: AlipayProvider
) -> None:
    account_id, _ = tripped_shop(db_url)
    with unit_of_work(db_url) as s:
        for amount, message in [("0", "greater than 0"), ("10.001", "at most 2 decimal places"),
                                ("60000", "per-sale maximum"), ("abc", "Recharge amount")]:
            with pytest.raises(BillingError, match=message):
                orders.create_order(s, account_id=account_id, amount=amount, now=T0,
                                    provider=provider, policy=POLICY)
        assert s.scalars(select(PaymentOrder)).all() == []


def test_the_online_operator_can_sell_and_nothing_else(db_url: str) -> None:
    with unit_of_work(db_url) as s:
        online = orders.online_operator(s, now=T0)
        assert orders.online_operator(s, now=T0).id == online.id
        assert [p for p in operators.PERMISSIONS if operators.can(online, p)] == ["sell"]
        assert operators.authenticate(s, "online", "!", now=T0) is None
