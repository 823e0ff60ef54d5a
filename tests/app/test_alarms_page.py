"""Alarms (告警): the real-time table an operator acknowledges, and the history by date and kind,
each exported to Excel; only the control permission acknowledges."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import delete, select
from streamlit.testing.v1 import AppTest

from schema.db import unit_of_work
from schema.models import Account, Alarm, AuditEntry, Meter
from tests.app.support import Downloads, Site
from voltpay.settings import get_settings


@pytest.fixture
def site(make_site: Callable[..., Site]) -> Site:
    """The demo mall without the balance alarms its low-credit shops raise when it is seeded:
    each test raises the alarms it looks at."""
    built = make_site()
    with unit_of_work(built.url) as session:
        assert set(session.scalars(select(Alarm.kind))) <= {"alarm1", "alarm2", "arrears"}
        session.execute(delete(Alarm))
    return built


def open_page(site: Site, username: str = "admin") -> AppTest:
    return site.open_app(username).switch_page("screens/alarms.py").run()


def raise_alarms(site: Site) -> dict[str, int]:
    """Two open alarms (energy went backwards on M00001 an hour ago, a tariff error on M00002
    just now) and one cleared last week."""
    now = datetime.now(UTC)
    with unit_of_work(site.url) as session:
        meters = {m.serial: m for m in session.scalars(select(Meter))}
        account = session.scalars(select(Account).where(Account.number == "10001")).one()
        alarms = {
            "backwards": Alarm(kind="energy_backwards", meter_id=meters["M00001"].id,
                               account_id=account.id, raised_at=now - timedelta(hours=1),
                               value="1234.50 → 12.00 kWh",
                               detail="The meter's energy went backwards (replaced or reset)"),
            "tariff": Alarm(kind="tariff_error", meter_id=meters["M00002"].id,
                            raised_at=now - timedelta(seconds=5),
                            value="No tariff covers 2026-11-25 09:00",
                            detail="This meter's readings cannot be priced"),
            "cleared": Alarm(kind="energy_backwards", meter_id=meters["M00003"].id,
                             raised_at=now - timedelta(days=7), value="88.00 → 0.00 kWh",
                             cleared_at=now - timedelta(days=6)),
        }
        session.add_all(alarms.values())
        session.flush()
        return {name: alarm.id for name, alarm in alarms.items()}


def acknowledge(at: AppTest, alarm_ids: list[int], note: str = "") -> AppTest:
    at.multiselect(key="alarms_ack_ids").set_value(alarm_ids)
    at.text_input(key="alarms_ack_note").input(note)
    return at.button(key="alarms_ack_submit").click().run()


def test_no_alarms_says_nothing_needs_attention(site: Site) -> None:
    at = open_page(site)

    assert at.title[0].value == "Alarms"
    assert [s.value for s in at.success] == [
        "No open alarms — nothing needs attention. Alarms appear here as soon as the collector "
        "raises them; past ones are under Alarm history."
    ]
    assert [c.value for c in at.caption] == ["Every open alarm is acknowledged."]
    assert [i.value for i in at.info] == [
        "No alarm was raised in these days. Widen the dates or clear the alarm filter."
    ]


def test_real_time_alarms_newest_first_with_meter_account_and_value(site: Site) -> None:
    ids = raise_alarms(site)

    at = open_page(site)

    table = at.dataframe[0].value
    assert list(table["id"]) == [ids["tariff"], ids["backwards"]]  # the cleared one is history
    assert list(table["kind"]) == ["Tariff error", "Energy went backwards"]
    backwards = table.iloc[1]
    assert (backwards["meter"], backwards["unit"], backwards["account"], backwards["tenant"]) == (
        "M00001", "A101", "10001", "Lucky Noodle House 福满面馆")
    assert backwards["value"] == "1234.50 → 12.00 kWh"
    with unit_of_work(site.url) as session:
        raised = session.get_one(Alarm, ids["backwards"]).raised_at
    local = raised.astimezone(get_settings().tz).replace(tzinfo=None)
    assert backwards["raised"].to_pydatetime() == local
    assert at.caption[0].value.startswith("2 open alarm(s), newest first.")


def test_an_operator_acknowledges_with_a_note(site: Site) -> None:
    ids = raise_alarms(site)
    at = open_page(site)
    assert at.multiselect(key="alarms_ack_ids").options == [
        f"#{ids['tariff']} · Tariff error · M00002 · " + label_time(site, ids["tariff"]),
        f"#{ids['backwards']} · Energy went backwards · M00001 · "
        + label_time(site, ids["backwards"]),
    ]

    acknowledge(at, [ids["tariff"]], "Tariff being mended by the finance office")

    assert [s.value for s in at.success] == ["Acknowledged 1 alarm(s)."]
    with unit_of_work(site.url) as session:
        alarm = session.get_one(Alarm, ids["tariff"])
        audit = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "alarm.acknowledge")
        ).one()
        assert alarm.acknowledged_by == site.operator_ids["admin"]
        assert alarm.ack_note == "Tariff being mended by the finance office"
        # A lasting condition stays open, acknowledged, until the tariff prices the meter.
        assert alarm.acknowledged_at is not None and alarm.cleared_at is None
        assert (audit.actor, audit.target) == ("admin", f"alarm {ids['tariff']}")
    row = at.dataframe[0].value.set_index("id").loc[ids["tariff"]]
    assert (row["acknowledged_by"], row["note"]) == (
        "admin", "Tariff being mended by the finance office")
    # Only the other alarm is left to acknowledge, and the form is clear for it.
    ack = at.multiselect(key="alarms_ack_ids")
    assert [o.split(" · ")[0] for o in ack.options] == [f"#{ids['backwards']}"]
    assert ack.value == [] and at.text_input(key="alarms_ack_note").value == ""


def test_acknowledging_an_anomaly_clears_it(site: Site) -> None:
    """Energy going backwards has no lasting condition: once acknowledged it leaves the
    real-time table and shows as cleared in the history."""
    ids = raise_alarms(site)
    at = acknowledge(open_page(site), [ids["backwards"]], "Meter replaced")
    assert ids["backwards"] not in set(at.dataframe[0].value["id"])
    with unit_of_work(site.url) as session:
        alarm = session.get_one(Alarm, ids["backwards"])
        assert alarm.cleared_at == alarm.acknowledged_at


def label_time(site: Site, alarm_id: int) -> str:
    with unit_of_work(site.url) as session:
        raised = session.get_one(Alarm, alarm_id).raised_at
    return raised.astimezone(get_settings().tz).strftime("%m-%d %H:%M")


def test_choosing_no_alarm_is_refused(site: Site) -> None:
    raise_alarms(site)
    at = open_page(site)

    acknowledge(at, [])

    assert [e.value for e in at.error] == ["Choose at least one alarm to acknowledge."]


def test_a_viewer_cannot_acknowledge(site: Site) -> None:
    ids = raise_alarms(site)
    at = open_page(site, "viewer")
    assert [i.value for i in at.info] == [
        "Acknowledging alarms needs the control permission — ask an administrator."
    ]

    acknowledge(at, [ids["tariff"]], "seen")

    assert [e.value for e in at.error] == ["viewer is not allowed to do this (control)"]
    with unit_of_work(site.url) as session:
        assert session.get_one(Alarm, ids["tariff"]).acknowledged_at is None


def test_history_by_dates_and_kind(site: Site) -> None:
    ids = raise_alarms(site)
    at = open_page(site)

    history = at.dataframe[1].value
    assert list(history["id"]) == [ids["tariff"], ids["backwards"], ids["cleared"]]
    assert history.set_index("id").loc[ids["cleared"], "cleared"] is not None

    at.multiselect(key="alarms_kinds").set_value(["tariff_error"]).run()
    assert list(at.dataframe[1].value["id"]) == [ids["tariff"]]

    today = datetime.now(UTC).astimezone(get_settings().tz).date()
    at.multiselect(key="alarms_kinds").set_value([]).run()
    at.date_input(key="alarms_from").set_value(today - timedelta(days=8))
    at.date_input(key="alarms_to").set_value(today - timedelta(days=6)).run()
    assert list(at.dataframe[1].value["id"]) == [ids["cleared"]]
    assert at.caption[-1].value == "1 alarm(s) raised in these days, newest first."

    at.date_input(key="alarms_from").set_value(date(2020, 1, 2))
    at.date_input(key="alarms_to").set_value(date(2020, 1, 1)).run()
    assert [e.value for e in at.error] == ["The start date must be on or before the end date"]


def test_both_tables_export_to_excel(site: Site, downloads: Downloads) -> None:
    raise_alarms(site)
    open_page(site)

    (open_file,) = [n for n in downloads if n.startswith("alarms-")]
    (history_file,) = [n for n in downloads if n.startswith("alarm-history-")]
    open_rows = list(load_workbook(io.BytesIO(downloads[open_file]())).active.values)
    history_rows = list(load_workbook(io.BytesIO(downloads[history_file]())).active.values)

    header = ("No.", "Alarm", "Meter", "Gateway", "Unit", "Account", "Tenant",
              "Raised at (Asia/Shanghai)", "Value", "Details", "Acknowledged at (Asia/Shanghai)",
              "Acknowledged by", "Note")
    assert open_rows[0] == header
    assert [row[1] for row in open_rows[1:]] == ["Tariff error", "Energy went backwards"]
    assert history_rows[0] == (*header, "Cleared at (Asia/Shanghai)")
    assert len(history_rows) == 4
    assert history_rows[3][13] is not None  # the cleared one, with when


def test_in_chinese(site: Site) -> None:
    raise_alarms(site)
    at = site.open_app("admin")
    at.session_state["lang"] = "zh"
    at.switch_page("screens/alarms.py").run()

    assert at.title[0].value == "告警"
    assert [tab.label for tab in at.tabs] == ["实时告警", "历史告警"]
    assert list(at.dataframe[0].value["kind"]) == ["电价错误", "电量倒走"]
