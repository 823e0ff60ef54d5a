"""Meters page: saving a meter's new thresholds or price queues that dispatch to the meter, says
so and links to the batch page, which follows the command; a meter that cannot receive it keeps
the values and the engineer is told."""

from __future__ import annotations

from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from billing import operators
from billing import site as site_service
from schema.db import unit_of_work
from schema.models import Command, Gateway, Meter, Operator
from tests.app.support import MAIN_SCRIPT, TIMEOUT_S, Site


def edit(site: Site, serial: str, at: AppTest | None = None) -> AppTest:
    with unit_of_work(site.url) as session:
        meter_id = session.scalars(select(Meter.id).where(Meter.serial == serial)).one()
    if at is None:
        at = site.open_app("admin")
    at = at.switch_page("screens/meters.py").run()
    return at.selectbox(key="meters_pick").set_value(meter_id).run()


def commands(site: Site) -> list[tuple[str, str, dict[str, str] | None]]:
    with unit_of_work(site.url) as session:
        rows = session.execute(
            select(Meter.serial, Command.kind, Command.payload)
            .join(Meter, Meter.id == Command.meter_id).order_by(Command.id)
        ).all()
    return [(serial, kind, payload) for serial, kind, payload in rows]


def test_new_thresholds_are_dispatched_and_followed_on_the_batch_page(site: Site) -> None:
    before = commands(site)
    at = edit(site, "M00009")  # a shop not opened: the meter's own thresholds apply

    at.text_input(key="meters_overload_kw").input("12.5")
    at.text_input(key="meters_alarm1_amount").input("100")
    at.text_input(key="meters_alarm2_amount").input("40")
    at.button(key="meters_save").click().run()

    assert not at.error
    assert [s.value for s in at.success] == ["Saved M00009."]
    assert [i.value for i in at.info] == [
        "A settings dispatch (alarm amounts and overload threshold) to meter M00009 is queued: "
        "the collector writes the new values to the meter."
    ]
    (link,) = at.get("page_link")
    assert link.proto.label == "Follow the command under Batch control"
    assert commands(site)[len(before):] == [("M00009", "settings", {
        "alarm1_amount": "100.00", "alarm2_amount": "40.00", "overload_kw": "12.500"})]

    # Saving again without a change dispatches nothing more.
    at.button(key="meters_save").click().run()
    assert [s.value for s in at.success] == ["Saved M00009."]
    assert not at.info
    assert len(commands(site)) == len(before) + 1

    at.switch_page("screens/control.py").run()
    # The live table of the commands this session sent, below the grid.
    followed = at.dataframe[1].value
    assert list(zip(followed["meter"], followed["kind"], strict=True)) == [
        ("M00009", "Settings dispatch")]


def test_a_meter_that_cannot_receive_the_price_keeps_it_and_is_said_so(site: Site) -> None:
    with unit_of_work(site.url) as session:
        admin = session.get_one(Operator, site.operator_ids["admin"])
        gateway_id = session.scalars(select(Gateway.id).order_by(Gateway.id)).first()
        site_service.create_meter(
            session, {"serial": "M90001", "profile": "acrel_dtsd1352", "gateway_id": gateway_id,
                      "bus_address": 200}, operator=admin, now=admin.created_at,
        )
    before = commands(site)
    at = edit(site, "M90001")

    at.text_input(key="meters_price_per_kwh").input("0.85")
    at.button(key="meters_save").click().run()

    assert [s.value for s in at.success] == ["Saved M90001."]
    assert [w.value for w in at.warning] == [
        "Meter M90001 cannot receive a price dispatch: its profile (acrel_dtsd1352) has no such "
        "control. The values are saved for billing only."
    ]
    assert not at.info and not at.get("page_link")
    assert commands(site) == before


def test_an_installer_who_cannot_open_the_batch_page_is_told_without_the_link(
    site: Site,
) -> None:
    with unit_of_work(site.url) as session:
        admin = session.get_one(Operator, site.operator_ids["admin"])
        now = admin.created_at
        operators.create_role(session, operator=admin, name="installer",
                              permissions=["configure"], now=now)
        installer = operators.add_operator(session, operator=admin, username="installer",
                                           display_name="", role="installer",
                                           password=site.password, now=now).id
    at = AppTest.from_file(MAIN_SCRIPT, default_timeout=TIMEOUT_S)
    at.session_state["operator_id"] = installer
    at = edit(site, "M00009", at.run())

    at.text_input(key="meters_price_per_kwh").input("1.5")
    at.button(key="meters_save").click().run()

    assert not at.exception
    assert [i.value for i in at.info] == [
        "A price dispatch to meter M00009 is queued: the collector writes the new values to "
        "the meter."
    ]
    assert not at.get("page_link")
