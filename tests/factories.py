"""Small builders for a site with a gateway, meters and accounts, used across the tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from billing import accounts, operators
from billing.policy import BillingPolicy
from schema.models import Building, Floor, Gateway, Meter, Operator, Unit

T0 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai
POLICY = BillingPolicy(default_price_per_kwh=Decimal("1.2000"))


@dataclass
class Site:
    gateway: Gateway
    meters: list[Meter]
    admin: Operator


def make_site(
    session: Session,
    *,
    meters: int = 1,
    host: str = "127.0.0.1",
    port: int = 1502,
    profile: str = "acrel_dtsy1352",
) -> Site:
    admin = operators.create_operator(
        session, username="admin", password="correct horse", role="administrator", now=T0
    )
    building = Building(code="A", name="Building A")
    floor = Floor(building=building, level=1, name="A1F")
    gateway = Gateway(name="GW-01", host=host, port=port, transport="tcp")
    created = []
    for i in range(1, meters + 1):
        unit = Unit(floor=floor, number=f"A1{i:02d}", name=f"Shop A1{i:02d}")
        created.append(
            Meter(serial=f"M{i:05d}", profile=profile, gateway=gateway, bus_address=i, unit=unit)
        )
    session.add_all([building, floor, gateway, *created])
    session.flush()
    return Site(gateway, created, admin)


def open_account(session: Session, site: Site, *meters: Meter, number: str = "10001") -> int:
    account = accounts.open_account(
        session,
        number=number,
        tenant_name="Lucky Noodle House 福满面馆",
        meter_ids=[m.id for m in meters],
        operator=site.admin,
        now=T0,
        policy=POLICY,
    )
    return account.id
