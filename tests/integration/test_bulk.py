"""Set-based batch writes (schema/bulk.py) store what the ORM would store, on both databases,
and a charged batch leaves the session's own objects in step with the rows it wrote."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from billing.charging import FinalReading, charge_readings
from schema import bulk
from schema.db import unit_of_work
from schema.models import Account, ChargeDaily, LedgerEntry, MeterBilling
from tests.factories import POLICY, make_site, open_account

T0 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
AWKWARD = ['quote " inside', "back\\slash", "comma, {brace}", "NULL", "", "中文 租户"]


def test_rows_round_trip_exactly_whatever_their_text(db_url: str) -> None:
    with unit_of_work(db_url) as s:
        site = make_site(s, meters=1)
        account_id = open_account(s, site, site.meters[0])
        bulk.insert_rows(s, LedgerEntry, [
            {"account_id": account_id, "kind": "transfer", "amount": Decimal("0.0001") * n,
             "balance_after": Decimal(0), "idempotency_key": f"bulk:{n}", "note": note,
             "meter_id": None, "effective_at": T0 + timedelta(microseconds=n),
             "recorded_at": T0}
            for n, note in enumerate(AWKWARD)
        ])
    with unit_of_work(db_url) as s:
        stored = s.execute(
            select(LedgerEntry.note, LedgerEntry.amount, LedgerEntry.meter_id,
                   LedgerEntry.effective_at)
            .where(LedgerEntry.idempotency_key.like("bulk:%"))
            .order_by(LedgerEntry.id)
        ).all()
    assert [tuple(row) for row in stored] == [
        (note, Decimal("0.0001") * n, None, T0 + timedelta(microseconds=n))
        for n, note in enumerate(AWKWARD)
    ]


def test_update_and_add_rows(db_url: str) -> None:
    with unit_of_work(db_url) as s:
        site = make_site(s, meters=2)
        ids = [meter.id for meter in site.meters]
        for meter_id in ids:
            s.add(MeterBilling(meter_id=meter_id, billed_at=T0, billed_energy_kwh=Decimal(1),
                               billed_band_energy={"peak": "1.00"}))
    with unit_of_work(db_url) as s:
        bulk.update_rows(s, MeterBilling, [
            {"meter_id": ids[0], "billed_energy_kwh": Decimal("2.5"),
             "billed_band_energy": {"peak": '2.50 "x"'}},
            {"meter_id": ids[1], "billed_energy_kwh": Decimal("3.0001"),
             "billed_band_energy": None},
        ], key="meter_id")
        day = date(2026, 11, 2)
        for _ in range(2):  # the second time adds to the rows the first inserted
            bulk.add_rows(s, ChargeDaily, [
                {"meter_id": meter_id, "on_date": day, "band": "peak",
                 "energy_kwh": Decimal("0.1234567891"), "cost": Decimal("1.5")}
                for meter_id in ids
            ], keys=("meter_id", "on_date", "band"))
    with unit_of_work(db_url) as s:
        positions = s.scalars(select(MeterBilling).order_by(MeterBilling.meter_id)).all()
        assert [(p.billed_energy_kwh, p.billed_band_energy) for p in positions] == [
            (Decimal("2.5"), {"peak": '2.50 "x"'}), (Decimal("3.0001"), None),
        ]
        assert [(d.energy_kwh, d.cost) for d in s.scalars(select(ChargeDaily))] == [
            (Decimal("0.2469135782"), Decimal(3)),
        ] * 2


def test_values_the_column_cannot_hold_are_refused(db_url: str) -> None:
    with unit_of_work(db_url) as s:
        site = make_site(s, meters=1)
        with pytest.raises(Exception, match="decimal places"):
            bulk.insert_rows(s, MeterBilling, [
                {"meter_id": site.meters[0].id, "billed_at": T0,
                 "billed_energy_kwh": Decimal("1.00001")}
            ])


def test_a_charged_batch_updates_the_objects_the_session_holds(db_url: str) -> None:
    """A caller that loaded the account and the meter's billing position before charging (as
    closing an account does) sees the charged balance and the new position afterwards."""
    with unit_of_work(db_url) as s:
        site = make_site(s, meters=1)
        meter_id = site.meters[0].id
        account_id = open_account(s, site, site.meters[0])
        s.get_one(Account, account_id).balance = Decimal("100.00")
        charge_readings(s, [FinalReading(meter_id, T0, Decimal(10))], policy=POLICY, now=T0)
    later = T0 + timedelta(hours=1)
    with unit_of_work(db_url) as s:
        account = s.get_one(Account, account_id)
        position = s.get_one(MeterBilling, meter_id)
        assert (account.balance, position.billed_energy_kwh) == (Decimal("100.00"), Decimal(10))
        charge_readings(s, [FinalReading(meter_id, later, Decimal(20))], policy=POLICY, now=later)
        price = POLICY.default_price_per_kwh
        assert account.balance == Decimal("100.00") - 10 * price
        assert (position.billed_at, position.billed_energy_kwh) == (later, Decimal(20))
        account.notes = "changed after charging"  # a later ORM write keeps the charged balance
    with unit_of_work(db_url) as s:
        assert s.get_one(Account, account_id).balance == Decimal("100.00") - 10 * price
