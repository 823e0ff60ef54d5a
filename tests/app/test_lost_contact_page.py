"""Lost contact (失联): the meters and gateways the collector cannot reach, since when and for how
long, exported to Excel; a site where everything answers says so."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import update
from streamlit.testing.v1 import AppTest

from app.screens.lost_contact import duration
from schema.db import unit_of_work
from schema.models import Gateway, Meter
from tests.app.support import Downloads, Site
from voltpay.settings import get_settings


def open_page(site: Site, username: str = "viewer") -> AppTest:
    return site.open_app(username).switch_page("screens/lost_contact.py").run()


def lose_gateway_2(site: Site) -> datetime:
    """GW-02 stopped answering 2 h 20 min ago; its meters were marked lost then too, and
    M00001 (on GW-01) on its own a day and a bit ago. Returns when GW-02 went."""
    now = datetime.now(UTC)
    went = now - timedelta(hours=2, minutes=20)
    with unit_of_work(site.url) as session:
        session.execute(update(Gateway).where(Gateway.name == "GW-02")
                        .values(lost_since=went, last_contact_at=went - timedelta(minutes=1)))
        gateway_2 = session.query(Gateway).filter_by(name="GW-02").one()
        session.execute(update(Meter).where(Meter.gateway_id == gateway_2.id)
                        .values(lost_since=went))
        session.execute(update(Meter).where(Meter.serial == "M00001")
                        .values(lost_since=now - timedelta(days=1, hours=3, minutes=1)))
    return went


def test_a_site_where_everything_answers_says_so(site: Site) -> None:
    at = open_page(site)

    assert at.title[0].value == "Lost contact"
    assert [s.value for s in at.success] == [
        "Every meter and gateway answers — nothing has lost contact. A meter is listed here "
        "when the collector misses it several times in a row."
    ]
    assert not at.dataframe


def test_lost_gateways_and_meters_with_since_when_and_how_long(site: Site) -> None:
    went = lose_gateway_2(site)

    at = open_page(site)

    assert [h.value for h in at.subheader] == ["Gateways (1)", "Meters (17)"]
    gateways = at.dataframe[0].value
    assert list(gateways["gateway"]) == ["GW-02"]
    assert gateways["address"][0] == "127.0.0.1:15022"
    assert gateways["meters"][0] == 16
    assert gateways["lost_for"][0] == "2 h 20 min"
    local = went.astimezone(get_settings().tz).replace(tzinfo=None, microsecond=0)
    assert gateways["lost_since"][0].to_pydatetime().replace(microsecond=0) == local
    meters = at.dataframe[1].value
    assert list(meters["meter"][:2]) == ["M00001", "M00002"]  # longest lost first
    assert meters["lost_for"][0] == "1 d 3 h"
    assert meters["unit"][0] == "A101"
    assert meters["tenant"][0] == "Lucky Noodle House 福满面馆"


def test_a_meter_lost_on_its_own_behind_an_answering_gateway(site: Site) -> None:
    with unit_of_work(site.url) as session:
        session.execute(update(Meter).where(Meter.serial == "M00004")
                        .values(lost_since=datetime.now(UTC) - timedelta(minutes=7)))

    at = open_page(site)

    assert [h.value for h in at.subheader] == ["Gateways (0)", "Meters (1)"]
    assert at.caption[1].value.startswith("Every gateway answers")
    assert list(at.dataframe[0].value["lost_for"]) == ["7 min"]


def test_both_lists_export_to_excel(site: Site, downloads: Downloads) -> None:
    lose_gateway_2(site)
    open_page(site)

    (gateways_file,) = [n for n in downloads if n.startswith("lost-gateways-")]
    (meters_file,) = [n for n in downloads if n.startswith("lost-meters-")]
    gateways = list(load_workbook(io.BytesIO(downloads[gateways_file]())).active.values)
    meters = list(load_workbook(io.BytesIO(downloads[meters_file]())).active.values)

    assert gateways[0] == ("Gateway", "Address", "Meters on it", "Last contact (Asia/Shanghai)",
                           "Lost since (Asia/Shanghai)", "Lost for (hours)")
    assert gateways[1][:3] == ("GW-02", "127.0.0.1:15022", 16)
    assert gateways[1][5] == 2.3
    assert meters[0] == ("Meter", "Unit", "Building", "Floor", "Gateway", "Account", "Tenant",
                         "Last reading (Asia/Shanghai)", "Lost since (Asia/Shanghai)",
                         "Lost for (hours)")
    assert len(meters) == 18
    assert meters[1][:2] == ("M00001", "A101") and meters[1][9] == 27.0


def test_in_chinese(site: Site) -> None:
    lose_gateway_2(site)
    at = site.open_app("viewer")
    at.session_state["lang"] = "zh"
    at.switch_page("screens/lost_contact.py").run()

    assert at.title[0].value == "失联电表与通讯管理机"
    assert [h.value for h in at.subheader] == ["通讯管理机（1）", "电表（17）"]
    assert at.dataframe[1].value["lost_for"][0] == "1天3小时"


@pytest.mark.parametrize(
    ("span", "text"),
    [(timedelta(seconds=59), "0 min"), (timedelta(minutes=59), "59 min"),
     (timedelta(hours=1), "1 h 0 min"), (timedelta(days=3, hours=23, minutes=59), "3 d 23 h")],
)
def test_durations_read_like_a_person_says_them(span: timedelta, text: str) -> None:
    assert duration(span) == text
