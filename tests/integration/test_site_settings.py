"""System settings (系统设置) on SQLite and PostgreSQL: buildings → floors → units, gateways,
meters and the default parameters, as an engineer sets up a mall — every refusal saves nothing
and says why; every change is in the operation log."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing import accounts, dispatch, parameters, pricing, site
from billing.errors import BillingError, PermissionDenied
from billing.operators import create_operator
from billing.parameters import SiteParameters
from billing.policy import BillingPolicy
from billing.site import InvalidInput
from billing.tariffs import BANDS
from schema.db import unit_of_work
from schema.models import (
    AuditEntry,
    Building,
    Command,
    Floor,
    Gateway,
    Meter,
    Operator,
    SiteParameter,
    Tariff,
    Unit,
)
from tests.factories import POLICY, T0, make_site

BASE = parameters.defaults(BillingPolicy(), collect_interval_s=1800)


def admin(session: Session) -> Operator:
    return session.scalars(select(Operator).where(Operator.username == "admin")).one()


@pytest.fixture
def url(db_url: str) -> str:
    """Building A (floor 1, units A101-A103), GW-01 with M00001-M00003 at addresses 1-3."""
    with unit_of_work(db_url) as session:
        make_site(session, meters=3)
    return db_url


def count(url: str, model: type) -> int:
    with unit_of_work(url) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def actions(url: str) -> list[tuple[str, str, dict[str, object]]]:
    with unit_of_work(url) as session:
        return [(e.action, e.target, e.detail)
                for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
                if not e.action.startswith(("operator.", "login"))]


def problems(refused: pytest.ExceptionInfo[InvalidInput]) -> list[tuple[str, str]]:
    return [(p.field, p.message) for p in refused.value.problems]


def test_a_building_its_floors_and_units(url: str) -> None:
    with unit_of_work(url) as s:
        building = site.create_building(s, {"code": "B", "name": "Building B B栋"},
                                        operator=admin(s), now=T0)
        basement = site.create_floor(s, building.id, {"level": "-1", "name": "B-B1"},
                                     operator=admin(s), now=T0)
        unit = site.create_unit(s, basement.id, {"number": "BB01", "name": "Supermarket",
                                                 "area_m2": "1200.5"}, operator=admin(s), now=T0)
        site.update_unit(s, unit.id, {"number": "BB01", "name": "Supermarket 超市",
                                      "area_m2": "1200.5"}, floor_id=basement.id,
                         operator=admin(s), now=T0)
        ground = site.create_floor(s, building.id, {"level": "1", "name": "B1F"},
                                   operator=admin(s), now=T0)
        site.update_unit(s, unit.id, {"number": "BB01", "name": "Supermarket 超市",
                                      "area_m2": "1200.5"}, floor_id=ground.id,
                         operator=admin(s), now=T0)
        site.update_unit(s, unit.id, {"number": "BB01", "name": "Supermarket 超市",
                                      "area_m2": "1200.5"}, floor_id=basement.id,
                         operator=admin(s), now=T0)
    with unit_of_work(url) as s:
        rows = {row.number: row for row in site.units(s)}
        assert (rows["BB01"].building, rows["BB01"].floor, rows["BB01"].name,
                rows["BB01"].area_m2) == ("B", "B-B1", "Supermarket 超市", Decimal("1200.5000"))
        assert [(b.code, b.floors, b.units) for b in site.buildings(s)] == [
            ("A", 1, 3), ("B", 2, 1),
        ]
    assert actions(url) == [
        ("building.create", "B", {"name": "Building B B栋"}),
        ("floor.create", "B/-1", {"name": "B-B1"}),
        ("unit.create", "BB01", {"floor": "B/-1"}),
        ("unit.update", "BB01", {"name": "Supermarket → Supermarket 超市"}),
        ("floor.create", "B/1", {"name": "B1F"}),
        ("unit.update", "BB01", {"floor": "B/-1 → B/1"}),
        ("unit.update", "BB01", {"floor": "B/1 → B/-1"}),
    ]


def test_duplicates_and_bad_fields_are_refused_with_every_reason(url: str) -> None:
    with pytest.raises(InvalidInput) as refused, unit_of_work(url) as s:
        site.create_building(s, {"code": "A", "name": "Again"}, operator=admin(s), now=T0)
    assert problems(refused) == [("code", "Building code A is already used")]

    with pytest.raises(InvalidInput) as refused, unit_of_work(url) as s:
        site.create_building(s, {"code": "C D", "name": ""}, operator=admin(s), now=T0)
    assert problems(refused) == [
        ("code", "Building code cannot contain spaces, not 'C D'"),
        ("name", "Building name is required"),
    ]

    with unit_of_work(url) as s:
        floor_id, building_id = s.execute(select(Floor.id, Floor.building_id)).one()
    with pytest.raises(InvalidInput) as refused, unit_of_work(url) as s:
        site.create_floor(s, building_id, {"level": "1", "name": "A1F bis"},
                          operator=admin(s), now=T0)
    assert problems(refused) == [("level", "Building A already has floor level 1 (A1F)")]

    with pytest.raises(InvalidInput) as refused, unit_of_work(url) as s:
        site.create_unit(s, floor_id, {"number": "A101", "area_m2": "0"}, operator=admin(s),
                         now=T0)
    assert problems(refused) == [("area_m2", "Area (m²) must be greater than 0, not '0'")]
    with pytest.raises(InvalidInput) as refused, unit_of_work(url) as s:
        site.create_unit(s, floor_id, {"number": "A101"}, operator=admin(s), now=T0)
    assert problems(refused) == [("number", "Unit number A101 is already used")]
    assert (count(url, Building), count(url, Floor), count(url, Unit)) == (1, 1, 3)


def test_what_is_in_use_is_not_deleted(url: str) -> None:
    with unit_of_work(url) as s:
        building = s.scalars(select(Building)).one()
        floor = s.scalars(select(Floor)).one()
        unit = s.scalars(select(Unit).where(Unit.number == "A101")).one()
        gateway = s.scalars(select(Gateway)).one()
        ids = building.id, floor.id, unit.id, gateway.id
    refusals = [
        (site.delete_building, ids[0], "Building A still has 1 floor(s): delete or move them "
                                       "first"),
        (site.delete_floor, ids[1], "Floor A1F of building A still has 3 unit(s): delete or "
                                    "move them first"),
        (site.delete_unit, ids[2], "Unit A101 has meter(s) M00001: move them to another unit "
                                   "first"),
        (site.delete_gateway, ids[3], "Gateway GW-01 still has 3 meter(s) on its bus: move them "
                                      "to another gateway or delete them first"),
    ]
    for delete, record_id, message in refusals:
        with pytest.raises(BillingError) as refused, unit_of_work(url) as s:
            delete(s, record_id, operator=admin(s), now=T0)
        assert str(refused.value) == message

    with unit_of_work(url) as s:
        empty = site.create_building(s, {"code": "Z", "name": "Empty"}, operator=admin(s),
                                     now=T0)
    with unit_of_work(url) as s:
        site.delete_building(s, empty.id, operator=admin(s), now=T0)
    assert count(url, Building) == 1
    assert actions(url)[-1] == ("building.delete", "Z", {})


def test_a_gateway_with_its_defaults_and_its_changes(url: str) -> None:
    with unit_of_work(url) as s:
        gateway = site.create_gateway(s, {"name": "GW-02", "host": "10.0.0.2"},
                                      operator=admin(s), now=T0)
        assert (gateway.port, gateway.transport, gateway.timeout_s, gateway.retries,
                gateway.gap_ms, gateway.baudrate, gateway.interval_s, gateway.enabled) == (
            502, "tcp", Decimal("1.000"), 1, 0, 9600, None, True)
    with unit_of_work(url) as s:
        site.update_gateway(s, gateway.id, {
            "name": "GW-02", "host": "10.0.0.2", "port": "4196", "transport": "rtu-over-tcp",
            "timeout_s": "2.5", "retries": "3", "gap_ms": "30", "baudrate": 9600,
            "interval_s": "600", "enabled": False,
        }, operator=admin(s), now=T0)
    with unit_of_work(url) as s:
        row = next(g for g in site.gateways(s) if g.name == "GW-02")
        assert (row.port, row.transport, row.timeout_s, row.interval_s, row.enabled,
                row.meters) == (4196, "rtu-over-tcp", Decimal("2.5000"), 600, False, 0)
    assert actions(url)[-1] == ("gateway.update", "GW-02", {
        "port": "502 → 4196", "transport": "tcp → rtu-over-tcp", "timeout_s": "1.0000 → 2.500",
        "retries": "1 → 3", "gap_ms": "0 → 30", "interval_s": " → 600",
        "enabled": "True → False",
    })


def test_a_gateway_with_bad_values_lists_them_all(url: str) -> None:
    with pytest.raises(InvalidInput) as refused, unit_of_work(url) as s:
        site.create_gateway(s, {"name": "GW-01", "host": "127.0.0.1", "port": "1502"},
                            operator=admin(s), now=T0)
    assert problems(refused) == [
        ("name", "Gateway name GW-01 is already used"),
        ("host", "Gateway GW-01 already uses 127.0.0.1:1502: one bus, one gateway"),
    ]
    with pytest.raises(InvalidInput) as refused, unit_of_work(url) as s:
        site.create_gateway(s, {"name": "GW-03", "host": "10.0.0.3", "port": "70000",
                                "transport": "udp", "interval_s": "5", "baudrate": "9601"},
                            operator=admin(s), now=T0)
    assert problems(refused) == [
        ("port", "Port must be a whole number from 1 to 65535, not '70000'"),
        ("transport", "Transport must be one of tcp, rtu-over-tcp, serial, not 'udp'"),
        ("baudrate", "Baud rate must be one of 1200, 2400, 4800, 9600, 19200, 38400, 57600, "
                     "115200, not '9601'"),
        ("interval_s", "Collection interval (s) must be a whole number from 10 to 86400, "
                       "not '5'"),
    ]
    assert count(url, Gateway) == 1


def new_meter(gateway_id: int, serial: str, address: object, **more: object) -> dict[str, object]:
    return {"serial": serial, "profile": "acrel_dtsy1352", "gateway_id": gateway_id,
            "bus_address": address, **more}


def test_a_meter_with_its_unit_tariff_and_thresholds(url: str) -> None:
    with unit_of_work(url) as s:
        tariff = pricing.create_tariff(s, name="Office", spec={"kind": "flat",
                                                               "flat_price": "0.95"},
                                       effective_from=T0, operator=admin(s), now=T0)
        gateway = s.scalars(select(Gateway)).one()
        unit = s.scalars(select(Unit).where(Unit.number == "A102")).one()
        meter = site.create_meter(s, new_meter(gateway.id, "M00010", "10", unit_id=unit.id,
                                               tariff_id=tariff.id, ct_ratio="40",
                                               alarm1_amount="100", alarm2_amount="40",
                                               overload_kw="12.5"),
                                  operator=admin(s), now=T0)
    with unit_of_work(url) as s:
        row = next(m for m in site.meters(s) if m.serial == "M00010")
    assert (row.gateway, row.bus_address, row.unit, row.tariff, row.ct_ratio, row.alarm1_amount,
            row.alarm2_amount, row.overload_kw, row.price_per_kwh) == (
        "GW-01", 10, "A102", "Office", 40, Decimal("100.0000"), Decimal("40.0000"),
        Decimal("12.5000"), None)
    assert actions(url)[-1] == ("meter.create", "M00010", {
        "gateway": "GW-01", "bus_address": "10", "profile": "acrel_dtsy1352"})
    assert meter.id == row.id


def test_meter_rules(url: str) -> None:
    with unit_of_work(url) as s:
        gateway_id = s.scalars(select(Gateway.id)).one()
        tariff = pricing.create_tariff(s, name="Office", spec={"kind": "flat",
                                                               "flat_price": "0.95"},
                                       effective_from=T0, operator=admin(s), now=T0)
        tariff_id = tariff.id
    cases = [
        (new_meter(gateway_id, "M00001", "2"), [
            ("serial", "Meter serial M00001 is already used"),
            ("bus_address", "Bus address 2 on gateway GW-01 is already used by meter M00002"),
        ]),
        (new_meter(gateway_id, "M00010", "248", profile="acrel_x"), [
            ("profile", "Profile must be one of acrel_ddsy1352, acrel_dtsd1352, acrel_dtsy1352, "
                        "chint_ddsu666, not 'acrel_x'"),
            ("bus_address", "Bus address must be a whole number from 1 to 247, not '248'"),
        ]),
        (new_meter(None, "M00010", "9"), [  # type: ignore[arg-type]
            ("gateway_id", "Choose the gateway whose bus the meter is on"),
        ]),
        (new_meter(gateway_id, "M00010", "9", alarm1_amount="20", alarm2_amount="20",
                   tariff_id=tariff_id, price_per_kwh="1.5"), [
            ("alarm2_amount", "Alarm 2 amount (20.00) must be lower than alarm 1 amount "
                              "(20.00): alarm 2 is the last warning before arrears"),
            ("price_per_kwh", "Give either a tariff or a price per kWh, not both (a price on "
                              "the meter would override the tariff)"),
        ]),
    ]
    for values, expected in cases:
        with pytest.raises(InvalidInput) as refused, unit_of_work(url) as s:
            site.create_meter(s, values, operator=admin(s), now=T0)
        assert problems(refused) == expected
    assert count(url, Meter) == 3


def test_a_bus_takes_32_meters_and_refuses_the_33rd(url: str) -> None:
    with unit_of_work(url) as s:
        gateway_id = s.scalars(select(Gateway.id)).one()
        for address in range(4, 33):
            site.create_meter(s, new_meter(gateway_id, f"M1{address:04d}", address),
                              operator=admin(s), now=T0)
    assert count(url, Meter) == 32

    with pytest.raises(InvalidInput) as refused, unit_of_work(url) as s:
        site.create_meter(s, new_meter(gateway_id, "M10033", 33), operator=admin(s), now=T0)
    assert problems(refused) == [(
        "gateway_id", "Gateway GW-01 already has 32 meters: an RS-485 bus takes at most 32; put "
                      "this meter on another gateway",
    )]
    assert count(url, Meter) == 32

    # Moving a meter that is already on the bus is no 33rd meter.
    with unit_of_work(url) as s:
        meter = s.scalars(select(Meter).where(Meter.serial == "M10032")).one()
        site.update_meter(s, meter.id, new_meter(gateway_id, "M10032", 200), operator=admin(s),
                          now=T0)
    assert actions(url)[-1] == ("meter.update", "M10032", {"bus_address": "32 → 200"})


def test_a_meter_in_use_is_not_deleted_one_entered_by_mistake_is(url: str) -> None:
    with unit_of_work(url) as s:
        meters = {m.serial: m.id for m in s.scalars(select(Meter))}
        accounts.open_account(s, number="10001", tenant_name="Lucky Noodle",
                              meter_ids=[meters["M00001"]], operator=admin(s), now=T0,
                              policy=POLICY)
        s.get_one(Meter, meters["M00002"]).last_reading_at = T0
        gateway_id = s.scalars(select(Gateway.id)).one()
        mistake = site.create_meter(s, new_meter(gateway_id, "M99999", 99), operator=admin(s),
                                    now=T0)
    for serial, message in [
        ("M00001", "Meter M00001 is on open account 10001: take it off the account (or close "
                   "the account) first"),
        ("M00002", "Meter M00002 has readings or billing history and cannot be deleted: the "
                   "records and reports need it"),
    ]:
        with pytest.raises(BillingError) as refused, unit_of_work(url) as s:
            site.delete_meter(s, meters[serial], operator=admin(s), now=T0)
        assert str(refused.value) == message

    with unit_of_work(url) as s:
        site.delete_meter(s, mistake.id, operator=admin(s), now=T0)
    assert count(url, Meter) == 3
    assert actions(url)[-1] == ("meter.delete", "M99999", {})


def test_only_who_may_configure_changes_the_site(url: str) -> None:
    with unit_of_work(url) as s:
        viewer = create_operator(s, username="viewer", password="correct horse", role="viewer",
                                 now=T0)
        cashier = create_operator(s, username="cashier", password="correct horse",
                                  role="cashier", now=T0)
        for who in (viewer, cashier, None):
            with pytest.raises(PermissionDenied):
                site.create_building(s, {"code": "X", "name": "X"}, operator=who, now=T0)
            with pytest.raises(PermissionDenied):
                parameters.save(s, {"overload_kw": "40"}, base=BASE, operator=who, now=T0)
        engineer = create_operator(s, username="engineer", password="correct horse",
                                   role="engineer", now=T0)
        site.create_building(s, {"code": "X", "name": "X"}, operator=engineer, now=T0)


# --- Dispatch of a saved meter -----------------------------------------------------------------


def dispatched(url: str) -> list[tuple[str, str, dict[str, Decimal]]]:
    """Every command queued: meter, kind and the values it writes."""
    with unit_of_work(url) as s:
        rows = s.execute(
            select(Meter.serial, Command.kind, Command.payload)
            .join(Meter, Meter.id == Command.meter_id).order_by(Command.id)
        ).all()
    return [(serial, kind, {k: Decimal(v) for k, v in (payload or {}).items()})
            for serial, kind, payload in rows]


def save_meter(url: str, serial: str, **changes: object) -> list[str]:
    """Save the meter as the form does, with `changes`; what the meter cannot receive."""
    with unit_of_work(url) as s:
        meter = s.scalars(select(Meter).where(Meter.serial == serial)).one()
        values = {key: getattr(meter, key) for key in (*site.METER_FIELDS, "gateway_id",
                                                       "unit_id", "tariff_id")}
        update = dispatch.update_meter(s, meter.id, values | changes, operator=admin(s),
                                       policy=POLICY, now=T0)
        assert update.meter.id == meter.id
        return update.cannot_receive


def test_a_changed_threshold_is_dispatched_to_its_meter_once(url: str) -> None:
    assert save_meter(url, "M00002", alarm1_amount="100", alarm2_amount="40",
                      overload_kw="12.5") == []

    assert dispatched(url) == [("M00002", "settings", {
        "alarm1_amount": Decimal(100), "alarm2_amount": Decimal(40),
        "overload_kw": Decimal("12.5")})]
    assert [a for a, target, _ in actions(url) if target == "M00002"] == [
        "meter.update", "command.settings"]

    # The same values again, and a change that no dispatch carries, queue nothing.
    save_meter(url, "M00002", alarm1_amount="100.00", alarm2_amount="40", overload_kw="12.500")
    save_meter(url, "M00002", ct_ratio="40")
    assert len(dispatched(url)) == 1

    # Back to the site default (blank): the meter is written the default.
    save_meter(url, "M00002", overload_kw="")
    assert dispatched(url)[-1] == ("M00002", "settings", {
        "alarm1_amount": Decimal(100), "alarm2_amount": Decimal(40),
        "overload_kw": POLICY.overload_kw})


def test_a_changed_price_or_tariff_is_dispatched_as_a_price(url: str) -> None:
    with unit_of_work(url) as s:
        tariff = pricing.create_tariff(s, name="Office", spec={"kind": "flat",
                                                               "flat_price": "0.95"},
                                       effective_from=T0, operator=admin(s), now=T0)
        tariff_id = tariff.id

    save_meter(url, "M00001", price_per_kwh="1.35")
    save_meter(url, "M00001", price_per_kwh="")  # back to the default flat price
    save_meter(url, "M00003", tariff_id=tariff_id)

    assert dispatched(url) == [
        ("M00001", "price", dict.fromkeys(BANDS, Decimal("1.35"))),
        ("M00001", "price", dict.fromkeys(BANDS, POLICY.default_price_per_kwh)),
        ("M00003", "price", dict.fromkeys(BANDS, Decimal("0.95"))),
    ]


def test_a_threshold_the_account_overrides_is_not_dispatched(url: str) -> None:
    with unit_of_work(url) as s:
        meter = s.scalars(select(Meter).where(Meter.serial == "M00001")).one()
        account = accounts.open_account(s, number="10001", tenant_name="Lucky Noodle",
                                        meter_ids=[meter.id], operator=admin(s), now=T0,
                                        policy=POLICY)
        account.alarm1_amount, account.alarm2_amount = Decimal(80), Decimal(30)

    save_meter(url, "M00001", alarm1_amount="100", alarm2_amount="40")
    assert dispatched(url) == []

    save_meter(url, "M00001", overload_kw="8")
    assert dispatched(url) == [("M00001", "settings", {
        "alarm1_amount": Decimal(80), "alarm2_amount": Decimal(30), "overload_kw": Decimal(8)})]


def test_a_metering_meter_keeps_its_values_but_gets_no_dispatch(url: str) -> None:
    with unit_of_work(url) as s:
        gateway_id = s.scalars(select(Gateway.id)).one()
        site.create_meter(s, new_meter(gateway_id, "M00009", 9, profile="acrel_dtsd1352"),
                          operator=admin(s), now=T0)

    assert save_meter(url, "M00009", overload_kw="20", price_per_kwh="0.8") == [
        "price", "settings"]

    assert dispatched(url) == []
    with unit_of_work(url) as s:
        meter = s.scalars(select(Meter).where(Meter.serial == "M00009")).one()
        assert (meter.overload_kw, meter.price_per_kwh) == (Decimal(20), Decimal("0.8"))


# --- Default parameters ------------------------------------------------------------------------


def test_parameters_start_from_the_settings(url: str) -> None:
    with unit_of_work(url) as s:
        assert parameters.current(s, BASE) == SiteParameters(
            overload_kw=Decimal("30.00"), collect_interval_s=1800,
            alarm1_amount=Decimal("50.00"), alarm2_amount=Decimal("20.00"),
            default_tariff_id=None, hoarding_limit=Decimal("100000.00"),
            max_sale_amount=Decimal("50000.00"), alarm_sms_number="",
        )
        assert parameters.effective_policy(s, POLICY) == POLICY
        assert parameters.get(s, "hoarding_limit") is None


def test_saved_parameters_override_the_settings_and_reach_billing(url: str) -> None:
    with unit_of_work(url) as s:
        tariff = pricing.create_tariff(s, name="Office", spec={"kind": "flat",
                                                               "flat_price": "0.95"},
                                       effective_from=T0, operator=admin(s), now=T0)
        saved = parameters.save(s, {
            "overload_kw": "45.5", "collect_interval_s": "900", "alarm1_amount": "80",
            "alarm2_amount": "30", "default_tariff_id": tariff.id, "hoarding_limit": "20000",
            "max_sale_amount": "5000", "alarm_sms_number": "+86 138-0000-0000",
        }, base=BASE, operator=admin(s), now=T0 + timedelta(minutes=1))
        assert saved == SiteParameters(
            overload_kw=Decimal("45.500"), collect_interval_s=900,
            alarm1_amount=Decimal("80.00"), alarm2_amount=Decimal("30.00"),
            default_tariff_id=tariff.id, hoarding_limit=Decimal("20000.00"),
            max_sale_amount=Decimal("5000.00"), alarm_sms_number="+8613800000000",
        )
    with unit_of_work(url) as s:
        assert parameters.current(s, BASE) == saved
        assert parameters.get(s, "collect_interval_s") == 900
        assert s.scalars(select(Tariff.name).where(Tariff.is_default.is_(True))).all() == [
            "Office"]
        assert parameters.effective_policy(s, POLICY) == replace(
            POLICY, overload_kw=Decimal("45.500"), alarm1_amount=Decimal("80.00"),
            alarm2_amount=Decimal("30.00"), hoarding_limit=Decimal("20000.00"),
            max_sale_amount=Decimal("5000.00"),
            alert_recipients=("+8613800000000",),  # the alarm SMS number gets operator alerts
        )
        row = s.get_one(SiteParameter, "alarm_sms_number")
        assert (row.value, row.updated_by) == ("+8613800000000", admin(s).id)
    logged = [(a, t, d) for a, t, d in actions(url) if a == "parameter.set"]
    assert logged[0] == ("parameter.set", "overload_kw", {"before": "30.00", "after": "45.500"})
    assert len(logged) == 8

    # Saving the same values again changes nothing and logs nothing.
    with unit_of_work(url) as s:
        parameters.save(s, {"overload_kw": "45.500", "alarm1_amount": "80.00"}, base=BASE,
                        operator=admin(s), now=T0 + timedelta(minutes=2))
    assert len([a for a, _, _ in actions(url) if a == "parameter.set"]) == 8

    # No default tariff: meters without a price or tariff fall back to the flat price.
    with unit_of_work(url) as s:
        parameters.set_parameter(s, "default_tariff_id", "", base=BASE, operator=admin(s),
                                 now=T0 + timedelta(minutes=3))
    with unit_of_work(url) as s:
        assert parameters.current(s, BASE).default_tariff_id is None
        assert not s.scalars(select(Tariff).where(Tariff.is_default.is_(True))).all()


def test_bad_parameters_are_all_refused_and_none_saved(url: str) -> None:
    with pytest.raises(InvalidInput) as refused, unit_of_work(url) as s:
        parameters.save(s, {
            "overload_kw": "-1", "collect_interval_s": "5", "alarm1_amount": "80",
            "alarm2_amount": "", "default_tariff_id": "999", "hoarding_limit": "lots",
            "max_sale_amount": "100.001", "alarm_sms_number": "call me",
        }, base=BASE, operator=admin(s), now=T0)
    assert problems(refused) == [
        ("overload_kw", "Overload threshold (kW) must be greater than 0, not '-1'"),
        ("collect_interval_s", "Collection interval (s) must be a whole number from 10 to "
                               "86400, not '5'"),
        ("alarm2_amount", "Alarm 2 amount is required"),
        ("hoarding_limit", "Hoarding limit must be a number, not 'lots'"),
        ("max_sale_amount", "Max sale amount can have at most 2 decimal places, not '100.001'"),
        ("alarm_sms_number", "Alarm SMS number must be a phone number of 5 to 20 digits (a "
                             "leading + is fine), not 'call me'"),
        ("default_tariff_id", "Tariff 999 does not exist"),
    ]
    with pytest.raises(InvalidInput) as refused, unit_of_work(url) as s:
        parameters.save(s, {"alarm1_amount": "80", "alarm2_amount": "80"}, base=BASE,
                        operator=admin(s), now=T0)
    assert problems(refused) == [(
        "alarm2_amount", "Alarm 2 amount (80.00) must be lower than alarm 1 amount (80.00): "
                         "alarm 2 is the last warning before arrears",
    )]
    with pytest.raises(InvalidInput) as refused, unit_of_work(url) as s:
        # Against the alarm 1 in force (50.00 from the settings).
        parameters.save(s, {"alarm2_amount": "60"}, base=BASE, operator=admin(s), now=T0)
    assert problems(refused)[0][1].startswith("Alarm 2 amount (60.00) must be lower than alarm 1")
    with pytest.raises(BillingError, match="Unknown parameter"), unit_of_work(url) as s:
        parameters.save(s, {"price": "1"}, base=BASE, operator=admin(s), now=T0)
    assert count(url, SiteParameter) == 0
    assert not [a for a, _, _ in actions(url) if a == "parameter.set"]
