"""Properties of the ledger for any sequence of readings, sales, refunds and reversals, on SQLite
and PostgreSQL: the balance is always Σ entries, no energy charge is negative, charging the same
readings again changes nothing, and the charges equal the tariff applied to the energy within
0.01 per tier period."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from billing import accounts, ledger, pricing, sales
from billing.charging import FinalReading, charge_readings
from billing.errors import BillingError
from billing.tariffs import TariffSchedule, TariffVersion, parse_spec
from schema.db import unit_of_work
from schema.models import Account, Gateway, LedgerEntry, Meter, Operator
from tests.factories import POLICY, make_site
from tests.integration.test_tariff_billing import SPEC

START = datetime(2026, 10, 25, 8, 0, tzinfo=POLICY.tz)  # a week before a month end

money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("300"), places=2)
operation = st.one_of(
    st.tuples(st.just("read"), st.integers(1, 60 * 30),
              st.decimals(min_value=Decimal("0"), max_value=Decimal("40"), places=2)),
    st.tuples(st.just("sale"), money),
    st.tuples(st.just("refund"), money),
    st.tuples(st.just("reverse"), st.integers(0, 20)),
    st.tuples(st.just("repeat")),
)


def test_any_sequence_of_operations_keeps_the_books_straight(db_url: str) -> None:
    with unit_of_work(db_url) as s:
        site = make_site(s, meters=0)
        tariff = pricing.create_tariff(s, name="TOU", spec=SPEC, effective_from=START,
                                       operator=site.admin, now=START)
        admin_id, tariff_id = site.admin.id, tariff.id
    schedule = TariffSchedule([TariffVersion(START, parse_spec(SPEC))], (), POLICY.tz)
    numbers = itertools.count(1)

    @settings(max_examples=25, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(st.lists(operation, min_size=1, max_size=25))
    def run(operations: list[tuple[Any, ...]]) -> None:
        n = next(numbers)
        with unit_of_work(db_url) as s:
            gateway = Gateway(name=f"GW-P{n}", host="127.0.0.1", port=1502)
            meter = Meter(serial=f"P{n}", profile="acrel_dtsy1352", gateway=gateway,
                          bus_address=1, tariff_id=tariff_id, relay="closed")
            s.add(meter)
            s.flush()
            account = accounts.open_account(
                s, number=f"P{n}", tenant_name=f"Tenant {n}", meter_ids=[meter.id],
                operator=s.get_one(Operator, admin_id), now=START, policy=POLICY)
            account_id, meter_id = account.id, meter.id
        readings = [FinalReading(meter_id, START, Decimal("1000.00"))]
        posted: list[int] = []
        expected_cost: dict[str, Decimal] = {}
        period_energy: dict[str, Decimal] = {}
        keys = itertools.count()

        def charge(batch: list[FinalReading]) -> None:
            with unit_of_work(db_url) as s:
                charge_readings(s, batch, policy=POLICY, now=batch[-1].at)

        charge(readings)
        for op in operations:
            try:
                with unit_of_work(db_url) as s:
                    admin = s.get_one(Operator, admin_id)
                    if op[0] == "sale":
                        posted.append(sales.sell(
                            s, account_id=account_id, amount=op[1], payment_method="cash",
                            idempotency_key=f"{n}-{next(keys)}", operator=admin,
                            now=readings[-1].at, policy=POLICY).entry.id)
                    elif op[0] == "refund":
                        posted.append(sales.refund(
                            s, account_id=account_id, amount=op[1], reason="test",
                            idempotency_key=f"{n}-{next(keys)}", operator=admin,
                            now=readings[-1].at, policy=POLICY).entry.id)
                    elif op[0] == "reverse" and posted:
                        sales.reverse(s, entry_id=posted[op[1] % len(posted)], reason="test",
                                      idempotency_key=f"{n}-{next(keys)}", operator=admin,
                                      now=readings[-1].at, policy=POLICY)
            except BillingError:
                pass  # a refused operation (over the limit, already reversed) saves nothing
            if op[0] == "read":
                last = readings[-1]
                new = FinalReading(meter_id, last.at + timedelta(minutes=op[1]),
                                   last.energy_kwh + op[2])
                so_far = period_energy.get(schedule.period_key(last.at), Decimal(0))
                for segment in schedule.price_interval(last.at, new.at, op[2],
                                                       period_energy_kwh=so_far):
                    p = segment.period
                    expected_cost[p] = expected_cost.get(p, Decimal(0)) + segment.cost
                    period_energy[p] = period_energy.get(p, Decimal(0)) + segment.energy_kwh
                readings.append(new)
                charge([new])
            elif op[0] == "repeat":
                charge(readings[-3:])
            with unit_of_work(db_url) as s:
                balance = s.get_one(Account, account_id).balance
                assert ledger.ledger_sum(s, account_id) == balance
                assert not s.scalar(select(func.count()).select_from(LedgerEntry).where(
                    LedgerEntry.account_id == account_id, LedgerEntry.kind == "charge",
                    LedgerEntry.amount > 0))

        with unit_of_work(db_url) as s:
            before = s.get_one(Account, account_id).balance
            entries = ledger.entry_count(s, account_id)
        charge(readings)  # everything again: nothing changes
        with unit_of_work(db_url) as s:
            assert s.get_one(Account, account_id).balance == before
            assert ledger.entry_count(s, account_id) == entries
            charged = -(s.scalar(select(func.sum(LedgerEntry.amount)).where(
                LedgerEntry.account_id == account_id, LedgerEntry.kind == "charge"))
                or Decimal(0))
        tariff_total = sum(expected_cost.values(), Decimal(0))
        assert abs(charged - tariff_total) <= Decimal("0.01") * max(1, len(expected_cost))

    run()

