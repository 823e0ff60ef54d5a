"""Many cashiers and the collector on one account at once — no lost update, no deadlock.

50 sales and refunds race on one account (threads, each operation in its own transaction) while
two collector shards charge its two meters, every batch also carrying a meter of a second account,
so both accounts are locked by several transactions at once. At the end the cached balance equals
Σ ledger entries equals opening + Σ sales − Σ refunds − Σ charges, every operation posted exactly
once, and the day's receipt numbers run 1..N without a gap. On PostgreSQL this exercises row locks
(a short lock_timeout turns any hang into a failure); on SQLite, which serialises writers
(BEGIN IMMEDIATE + busy_timeout), the same run must simply work.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from billing import accounts, ledger, sales
from billing.charging import charge_readings
from billing.errors import BillingError
from billing.money import to_charge
from schema.db import get_engine, session_factory, unit_of_work
from schema.models import Account, LedgerEntry, Meter, Operator
from tests.factories import POLICY, T0, make_site

ROUNDS = 20  # charging rounds per collector shard
PRICE_A = Decimal("0.8765")  # 4 places: charges round, totals must not drift
PRICE_B = Decimal("1.0000")
STEP_KWH = {0: Decimal("1.25"), 1: Decimal("0.75"), 2: Decimal("2.00"), 3: Decimal("0.50")}
OPENING_A = Decimal("1000.00")
OPENING_B = Decimal("500.00")
DEADLINE_S = 90.0


@dataclass(frozen=True)
class R:
    meter_id: int
    at: datetime
    energy_kwh: Decimal


@dataclass(frozen=True)
class Shop:
    url: str
    account_a: int
    account_b: int
    meters: list[int]  # m0, m1 on account A; m2, m3 on account B


def bounded(url: str) -> str:
    """On PostgreSQL, a connection that waits on a lock for 10 s fails instead of hanging."""
    if not url.startswith("postgresql"):
        return url
    return make_url(url).update_query_dict({"options": "-c lock_timeout=10s"}).render_as_string(
        hide_password=False
    )


@pytest.fixture
def shop(db_url: str) -> Iterator[Shop]:
    url = bounded(db_url)
    with unit_of_work(url) as s:
        site = make_site(s, meters=4)
        for i, meter in enumerate(site.meters):
            meter.relay = "closed"
            meter.price_per_kwh = PRICE_A if i < 2 else PRICE_B
        a = accounts.open_account(
            s, number="A-1", tenant_name="福满面馆", operator=site.admin, now=T0, policy=POLICY,
            meter_ids=[m.id for m in site.meters[:2]],
            first_sale=accounts.FirstSale(OPENING_A, "cash", "opening-a"),
        )
        b = accounts.open_account(
            s, number="B-1", tenant_name="Corner Tea", operator=site.admin, now=T0,
            policy=POLICY, meter_ids=[m.id for m in site.meters[2:]],
            first_sale=accounts.FirstSale(OPENING_B, "cash", "opening-b"),
        )
        meter_ids = [m.id for m in site.meters]
        # Each meter's first reading is its billing base: 0 kWh at T0.
        charge_readings(s, [R(m, T0, Decimal("0")) for m in meter_ids], policy=POLICY, now=T0)
        shop = Shop(url, a.id, b.id, meter_ids)
    yield shop
    if url != db_url:
        get_engine(url).dispose()


def admin(s: Session) -> Operator:
    return s.scalars(select(Operator).where(Operator.username == "admin")).one()


def sell(url: str, account_id: int, amount: Decimal, key: str, when: datetime
         ) -> sales.PostResult:
    with unit_of_work(url) as s:
        return sales.sell(s, account_id=account_id, amount=amount, payment_method="cash",
                          idempotency_key=key, operator=admin(s), now=when, policy=POLICY)


def refund(url: str, account_id: int, amount: Decimal, key: str, when: datetime
           ) -> sales.PostResult:
    with unit_of_work(url) as s:
        return sales.refund(s, account_id=account_id, amount=amount, reason="overpaid",
                            idempotency_key=key, operator=admin(s), now=when, policy=POLICY)


class Collector:
    """One collector shard: charges its meters round after round, readings always increasing.

    Its rounds are separate tasks in the shared pool, interleaved with the cashiers' work; a
    lock keeps one shard's rounds in order, as one collector process would.
    """

    def __init__(self, url: str, meters: list[tuple[int, Decimal]]) -> None:
        self.url = url
        self.meters = meters  # (meter id, kWh per round)
        self.lock = threading.Lock()
        self.rounds = itertools.count(1)

    def next_round(self) -> int:
        with self.lock:
            r = next(self.rounds)
            when = T0 + timedelta(minutes=5 * r)
            batch = [R(m, when, step * r) for m, step in self.meters]
            with unit_of_work(self.url) as s:
                result = charge_readings(s, batch, policy=POLICY, now=when)
            assert len(result.charges) == len(self.meters)
            return r


def run_all(tasks: list[Callable[[], object]], workers: int = 20) -> list[Future[object]]:
    """Run every task on a pool; fail (never hang) if they are not all done by the deadline."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cashier")
    try:
        futures = [pool.submit(task) for task in tasks]
        _, not_done = wait(futures, timeout=DEADLINE_S)
        assert not not_done, f"{len(not_done)} operations still running after {DEADLINE_S} s"
        return futures
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def test_concurrent_sales_refunds_and_charging_keep_the_ledger_exact(shop: Shop) -> None:
    url, a, b = shop.url, shop.account_a, shop.account_b
    m0, m1, m2, m3 = shop.meters
    # Two collector shards, each with one meter of A and one of B: every batch locks A and B.
    shards = [
        Collector(url, [(m2, STEP_KWH[2]), (m0, STEP_KWH[0])]),
        Collector(url, [(m1, STEP_KWH[1]), (m3, STEP_KWH[3])]),
    ]
    rng = random.Random(20261102)
    sale_amounts = {f"sale-{i}": Decimal(f"{10 + i}.{rng.randrange(100):02d}") for i in range(35)}
    refund_amounts = {f"refund-{i}": Decimal(f"{1 + i % 5}.{rng.randrange(100):02d}")
                      for i in range(15)}
    duplicates = {f"double-click-{i}": Decimal(f"{7 + i}.50") for i in range(3)}
    b_sales = {f"b-sale-{i}": Decimal("5.00") for i in range(5)}

    def when(i: int) -> datetime:
        return T0 + timedelta(seconds=i)  # all on 2 Nov, Shanghai time

    tasks: list[Callable[[], object]] = []
    for i, (key, amount) in enumerate(sale_amounts.items()):
        tasks.append(lambda k=key, v=amount, i=i: sell(url, a, v, k, when(i)))
    for i, (key, amount) in enumerate(refund_amounts.items()):
        tasks.append(lambda k=key, v=amount, i=i: refund(url, a, v, k, when(100 + i)))
    for i, (key, amount) in enumerate(duplicates.items()):
        for _ in range(3):  # the same form posted three times at once
            tasks.append(lambda k=key, v=amount, i=i: sell(url, a, v, k, when(200 + i)))
    for i, (key, amount) in enumerate(b_sales.items()):
        tasks.append(lambda k=key, v=amount, i=i: sell(url, b, v, k, when(300 + i)))
    for shard in shards:
        tasks += [shard.next_round] * ROUNDS
    rng.shuffle(tasks)

    started = time.monotonic()
    futures = run_all(tasks)
    elapsed = time.monotonic() - started
    errors = [f.exception() for f in futures if f.exception() is not None]
    assert errors == [], f"unexpected errors: {errors!r}"
    results = [f.result() for f in futures]
    posted = [r for r in results if isinstance(r, sales.PostResult)]

    # Each duplicated form posted once; the other two got the first result back.
    for key in duplicates:
        same = [r for r in posted if r.entry.idempotency_key == f"sale:{key}"]
        assert sorted(r.repeated for r in same) == [False, True, True], key
        assert len({r.entry.id for r in same}) == 1, key

    charged = {m: to_charge(STEP_KWH[i] * ROUNDS * (PRICE_A if i < 2 else PRICE_B))
               for i, m in enumerate(shop.meters)}
    expected_a = (OPENING_A + sum(sale_amounts.values()) + sum(duplicates.values())
                  - sum(refund_amounts.values()) - charged[m0] - charged[m1])
    expected_b = OPENING_B + sum(b_sales.values()) - charged[m2] - charged[m3]

    with unit_of_work(url) as s:
        # One statement reads balance and Σ entries from the same snapshot.
        rows = s.execute(
            select(Account.id, Account.balance, func.sum(LedgerEntry.amount), func.count())
            .join(LedgerEntry, LedgerEntry.account_id == Account.id)
            .group_by(Account.id, Account.balance)
        ).all()
        state = {row[0]: (row[1], row[2], row[3]) for row in rows}
        assert state[a][:2] == (expected_a, expected_a)
        assert state[b][:2] == (expected_b, expected_b)
        # Entries: opening + 35 sales + 3 once-only duplicates + 15 refunds + 2 × 20 charges.
        assert state[a][2] == 1 + 35 + 3 + 15 + 2 * ROUNDS
        assert state[b][2] == 1 + 5 + 2 * ROUNDS

        kinds = dict(
            s.execute(
                select(LedgerEntry.kind, func.count())
                .where(LedgerEntry.account_id == a)
                .group_by(LedgerEntry.kind)
            ).all()
        )
        assert kinds == {"sale": 1 + 35 + 3, "refund": 15, "charge": 2 * ROUNDS}
        for meter_id, total in charged.items():
            assert s.scalar(
                select(func.sum(LedgerEntry.amount)).where(LedgerEntry.meter_id == meter_id)
            ) == -total

        # No lost update: an account's lock is held from its entry's insert to the commit, so
        # in id order each entry's balance_after is the running sum of the entries before it.
        for account_id in (a, b):
            running = Decimal(0)
            for entry in s.scalars(
                select(LedgerEntry).where(LedgerEntry.account_id == account_id)
                .order_by(LedgerEntry.id)
            ):
                running += entry.amount
                assert entry.balance_after == running, f"entry {entry.id} lost an update"
            assert running == state[account_id][0]
        # The collector really ran among the cashiers: charges and counter money alternate.
        order = s.scalars(
            select(LedgerEntry.kind).where(LedgerEntry.account_id == a).order_by(LedgerEntry.id)
        ).all()
        switches = sum((x == "charge") != (y == "charge") for x, y in itertools.pairwise(order))
        assert switches >= 10, order

        numbers = s.scalars(
            select(LedgerEntry.receipt_no).where(LedgerEntry.receipt_no.is_not(None))
        ).all()
        # 2 openings + 35 + 3 + 15 on A + 5 on B, numbered 1..N for the day, no gap, no repeat.
        n = 2 + 35 + 3 + 15 + 5
        assert sorted(numbers) == [f"20261102-{i:04d}" for i in range(1, n + 1)]

        meters = s.scalars(select(Meter).where(Meter.id.in_(shop.meters))).all()
        assert all(m.relay == "closed" for m in meters)  # nobody reached arrears
    assert elapsed < 30, f"the run took {elapsed:.1f} s"


def waiting_on_a_lock(url: str) -> int:
    with get_engine(url).connect() as conn:
        return conn.scalar(text(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )) or 0


@pytest.mark.postgres
def test_one_form_posted_for_two_accounts_at_once_posts_once(pg_url: str) -> None:
    """The idempotency key's unique constraint is not covered by the account lock: the same form
    posted for account A and account B at the same moment races to the insert. The loser must
    get the cashier's message (the form was used for another account), not an IntegrityError,
    and must leave no trace — not even a receipt number."""
    with unit_of_work(pg_url) as s:
        site = make_site(s, meters=2)
        ids = []
        for number, meter in (("A-1", site.meters[0]), ("B-1", site.meters[1])):
            account = accounts.open_account(s, number=number, tenant_name=number,
                                            operator=site.admin, now=T0, policy=POLICY,
                                            meter_ids=[meter.id])
            ids.append(account.id)
    a, b = ids
    first = session_factory(pg_url)()
    try:
        sales.sell(first, account_id=a, amount="10.00", payment_method="cash",
                   idempotency_key="form-1", operator=admin(first), now=T0, policy=POLICY)
        with ThreadPoolExecutor(max_workers=1) as pool:
            # B's sale checks the key (not there yet), then waits for the day's receipt counter.
            second = pool.submit(sell, pg_url, b, Decimal("20.00"), "form-1", T0)
            deadline = time.monotonic() + 10
            while waiting_on_a_lock(pg_url) == 0:
                assert time.monotonic() < deadline, "the second sale never waited"
                time.sleep(0.01)
            first.commit()
            with pytest.raises(BillingError, match="already used for another account"):
                second.result(timeout=30)
    finally:
        first.close()
    with unit_of_work(pg_url) as s:
        assert s.get_one(Account, a).balance == Decimal("10.00")
        assert s.get_one(Account, b).balance == Decimal("0")
        assert ledger.ledger_sum(s, b) == Decimal("0")
    assert sell(pg_url, b, Decimal("20.00"), "form-2", T0).entry.receipt_no == "20261102-0002"


@pytest.mark.postgres
def test_an_account_loaded_before_the_lock_is_refreshed_by_it(pg_url: str) -> None:
    """A session that read the account (say, to show its balance) and then sells must sell from
    the balance under the row lock, not from what it read before: else a sale committed in
    between is overwritten — a lost update."""
    with unit_of_work(pg_url) as s:
        site = make_site(s)
        account_id = accounts.open_account(
            s, number="A-1", tenant_name="A", operator=site.admin, now=T0, policy=POLICY,
            meter_ids=[site.meters[0].id],
            first_sale=accounts.FirstSale("100.00", "cash", "opening"),
        ).id
    with unit_of_work(pg_url) as s:
        shown = s.get_one(Account, account_id)  # the form shows its balance, 100.00
        assert shown.balance == Decimal("100.00")
        sell(pg_url, account_id, Decimal("30.00"), "other-till", T0)  # another till, committed
        result = sales.sell(s, account_id=account_id, amount="5.00", payment_method="cash",
                            idempotency_key="this-till", operator=admin(s), now=T0,
                            policy=POLICY)
        assert result.balance == Decimal("135.00")
    with unit_of_work(pg_url) as s:
        assert s.get_one(Account, account_id).balance == Decimal("135.00")
        assert ledger.ledger_sum(s, account_id) == Decimal("135.00")
