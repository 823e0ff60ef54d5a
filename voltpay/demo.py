"""The demo site `make run` seeds on first start: 2 buildings × 3 floors × 8 shops on 3 gateways."""

from __future__ import annotations

import random
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing import accounts, pricing
from billing.policy import BillingPolicy
from schema.models import Building, Floor, Gateway, Meter, Operator, Unit

BUILDINGS = (("A", "Building A", "A栋"), ("B", "Building B", "B栋"))
FLOORS = 3
SHOPS_PER_FLOOR = 8
GATEWAYS = 3
PROFILE = "acrel_dtsy1352"
TENANTS = (
    "Lucky Noodle House 福满面馆", "Green Leaf Tea 绿叶茶庄", "Star Phone Repair 星星手机维修",
    "Golden Bakery 金麦面包", "Happy Kids Toys 童乐玩具", "Jade Pharmacy 玉康药房",
    "Sunrise Optics 日出眼镜", "Peach Blossom Florist 桃花花店", "Silver Thread Tailor 银线裁缝",
    "Metro Coffee 地铁咖啡", "Red Lantern Hotpot 红灯笼火锅", "Bamboo Bookstore 竹林书店",
)


# A commercial time-of-use tariff with a monthly ladder surcharge, the site's default. Its day
# plan is the simulated meters' own band clock, so they are billed from their band registers.
DEMO_TARIFF: dict[str, object] = {
    "kind": "tou_tiered",
    "band_prices": {"sharp": "1.4500", "peak": "1.2000", "flat": "0.8500", "valley": "0.4500"},
    "plans": {
        "standard": [
            {"start": "00:00", "band": "valley"},
            {"start": "08:00", "band": "peak"},
            {"start": "11:00", "band": "flat"},
            {"start": "17:00", "band": "peak"},
            {"start": "19:00", "band": "sharp"},
            {"start": "21:00", "band": "peak"},
            {"start": "22:00", "band": "flat"},
            {"start": "23:00", "band": "valley"},
        ]
    },
    "seasons": [{"name": "all year", "plan": "standard"}],
    "tiers": [
        {"from_kwh": "0", "surcharge": "0"},
        {"from_kwh": "2000", "surcharge": "0.0500"},
        {"from_kwh": "5000", "surcharge": "0.1500"},
    ],
    "tier_period": "month",
}


def site_is_empty(session: Session) -> bool:
    return not session.scalar(select(func.count()).select_from(Meter))


def seed_demo_site(
    session: Session,
    *,
    admin: Operator,
    now: datetime,
    gateway_host: str = "127.0.0.1",
    first_port: int = 15021,
    policy: BillingPolicy,
) -> int:
    """Create buildings, floors, shops, gateways, one meter per shop and accounts for most shops.

    A few accounts start with little credit so the demo shows a trip within minutes, and a few
    shops have no account (not opened). Returns the number of meters created.
    """
    rng = random.Random(20261125)
    pricing.create_tariff(
        session, name="Commercial TOU 商业分时", spec=DEMO_TARIFF, effective_from=now,
        operator=admin, now=now, is_default=True,
    )
    gateways = [
        Gateway(name=f"GW-{i + 1:02d}", host=gateway_host, port=first_port + i, transport="tcp")
        for i in range(GATEWAYS)
    ]
    session.add_all(gateways)
    shop = 0
    meters: list[Meter] = []
    for code, name, name_zh in BUILDINGS:
        building = Building(code=code, name=f"{name} {name_zh}")
        session.add(building)
        for level in range(1, FLOORS + 1):
            floor = Floor(building=building, level=level, name=f"{code}{level}F")
            session.add(floor)
            for n in range(1, SHOPS_PER_FLOOR + 1):
                number = f"{code}{level}{n:02d}"
                unit = Unit(floor=floor, number=number, name=f"Shop {number}")
                gateway = gateways[shop % GATEWAYS]
                meter = Meter(
                    serial=f"M{shop + 1:05d}",
                    profile=PROFILE,
                    gateway=gateway,
                    bus_address=shop // GATEWAYS + 1,
                    unit=unit,
                )
                session.add_all([unit, meter])
                meters.append(meter)
                shop += 1
    session.flush()
    for i, meter in enumerate(meters):
        if i % 9 == 8:
            continue  # not opened
        accounts.open_account(
            session,
            number=f"{10001 + i}",
            tenant_name=TENANTS[i % len(TENANTS)],
            phone=f"1380000{i:04d}",
            meter_ids=[meter.id],
            operator=admin,
            now=now,
            policy=policy,
            first_sale=accounts.FirstSale(
                amount=Decimal(rng.choice((15, 30, 60, 200, 500, 800, 1500))),
                payment_method=rng.choice(("cash", "card", "transfer")),
                idempotency_key=f"demo-opening-{i}",
            ),
        )
    return len(meters)
