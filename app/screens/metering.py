"""Metering meters (not prepaid): each circuit's registers and energy over a range of days."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import streamlit as st

from app import auth, i18n
from app.export import DATETIME, ENERGY, XLSX_MIME, Column, xlsx_bytes
from app.i18n import t
from app.nav import Screen
from app.screens.energy import chosen_range, reading_store, today
from billing import reports
from billing.errors import BillingError
from billing.money import format_money
from billing.operators import can
from billing.reports import MeteringRow
from schema.db import unit_of_work
from schema.models import Operator
from voltpay.settings import get_settings

CACHE_TTL_S = 60

STRINGS = {
    "en": {
        "metering.nav": "Metering meters",
        "metering.title": "Metering meters",
        "metering.range": "Days",
        "metering.search": "Filter",
        "metering.search_placeholder": "Meter, unit or circuit",
        "metering.empty": "No metering meters yet — add meters with a metering profile "
        "(such as Acrel DTSD1352 or Chint DDSU666) in settings.",
        "metering.none_match": "No metering meter matches “{text}”.",
        "metering.metric.meters": "Metering meters",
        "metering.metric.energy": "Energy (kWh)",
        "metering.metric.silent": "Without readings",
        "metering.note": "Start is the register when the range began (the last reading before "
        "it); end is the last reading in the range. Days already archived keep only their "
        "totals, so their registers are not shown.",
        "metering.col.meter": "Meter",
        "metering.col.model": "Model",
        "metering.col.unit": "Unit",
        "metering.col.circuit": "Circuit",
        "metering.col.gateway": "Gateway",
        "metering.col.start": "Start (kWh)",
        "metering.col.end": "End (kWh)",
        "metering.col.energy": "Energy (kWh)",
        "metering.col.last": "Last reading ({tz})",
        "metering.export": "Export to Excel",
    },
    "zh": {
        "metering.nav": "计量电表",
        "metering.title": "计量电表",
        "metering.range": "日期",
        "metering.search": "筛选",
        "metering.search_placeholder": "电表、户号或回路",
        "metering.empty": "还没有计量电表——请在系统设置中添加计量型号的电表"
        "（如安科瑞 DTSD1352、正泰 DDSU666）。",
        "metering.none_match": "没有与“{text}”匹配的计量电表。",
        "metering.metric.meters": "计量电表",
        "metering.metric.energy": "电量 (kWh)",
        "metering.metric.silent": "无读数",
        "metering.note": "起始读数为时段开始时的表码（时段前的最后一次读数）；"
        "结束读数为时段内的最后一次读数。已转存的日期只保留日合计，因此不显示表码。",
        "metering.col.meter": "电表",
        "metering.col.model": "型号",
        "metering.col.unit": "户号",
        "metering.col.circuit": "回路",
        "metering.col.gateway": "通讯管理机",
        "metering.col.start": "起始读数 (kWh)",
        "metering.col.end": "结束读数 (kWh)",
        "metering.col.energy": "电量 (kWh)",
        "metering.col.last": "最后抄表时间 ({tz})",
        "metering.export": "导出 Excel",
    },
}
# Streamlit runs this file again as the page script; the module import registered them then.
if STRINGS["en"].keys() - i18n.STRINGS["en"].keys():
    i18n.register(STRINGS)

SCREEN = Screen(module="metering", url_path="metering-energy", title_key="metering.nav",
                permission="view", icon=":material/electric_meter:", section="section.reports",
                order=20)


def render() -> None:
    st.title(t("metering.title"))
    with unit_of_work(auth.database_url()) as session:
        operator = auth.current_operator(session)
        allowed = can(operator, "view")
    if not allowed or operator is None:
        st.error(t("denied.view"))
        return
    month_so_far = today().day
    days = chosen_range("metering_range", t("metering.range"), month_so_far)
    if days is None:
        return
    try:
        rows = _energy(auth.database_url(), operator.id, days[0], days[1])
    except BillingError as exc:
        st.error(str(exc))
        return
    if not rows:
        st.info(t("metering.empty"))
        return
    text = st.text_input(t("metering.search"), key="metering_search",
                         placeholder=t("metering.search_placeholder"))
    shown = [row for row in rows if _matches(row, text)]
    if not shown:
        st.info(t("metering.none_match", text=text.strip()))
        return
    _metrics(shown)
    _table(shown, days)


@st.cache_data(ttl=CACHE_TTL_S, max_entries=32, show_spinner=False)
def _energy(database_url: str, operator_id: int, start_on: date, end_on: date) -> list[MeteringRow]:
    """Cached per operator: the service checks the permission whenever it runs."""
    settings = get_settings()
    with unit_of_work(database_url) as session:
        query = reports.metering_query(session, operator=session.get(Operator, operator_id),
                                       start_on=start_on, end_on=end_on, tz=settings.tz)
    # After the transaction: the embedded store reads the same database (see billing.reports).
    return reports.metering_energy(query, reading_store(settings.timeseries_url, database_url))


def _matches(row: MeteringRow, text: str) -> bool:
    needle = text.strip().lower()
    meter = row.meter
    return not needle or any(
        needle in (value or "").lower()
        for value in (meter.serial, meter.unit, meter.unit_name, meter.gateway, row.model)
    )


def _metrics(rows: list[MeteringRow]) -> None:
    meters, energy, silent = st.columns(3)
    meters.metric(t("metering.metric.meters"), len(rows), border=True)
    total = sum((row.energy_kwh or Decimal(0) for row in rows), Decimal(0))
    energy.metric(t("metering.metric.energy"), format_money(total), border=True)
    silent.metric(t("metering.metric.silent"), sum(1 for row in rows if row.energy_kwh is None),
                  border=True)


def _table(rows: list[MeteringRow], days: tuple[date, date]) -> None:
    tz = get_settings().tz
    data: list[dict[str, Any]] = [
        {
            "meter": row.meter.serial,
            "model": row.model,
            "unit": row.meter.unit,
            "circuit": row.meter.unit_name,
            "gateway": row.meter.gateway,
            "start_kwh": row.start_kwh,
            "end_kwh": row.end_kwh,
            "energy_kwh": row.energy_kwh,
            # Local wall-clock time: the table and Excel show it as the site reads it.
            "last_reading": row.last_reading_at.astimezone(tz).replace(tzinfo=None)
            if row.last_reading_at else None,
        }
        for row in rows
    ]
    headers = {
        "meter": t("metering.col.meter"),
        "model": t("metering.col.model"),
        "unit": t("metering.col.unit"),
        "circuit": t("metering.col.circuit"),
        "gateway": t("metering.col.gateway"),
        "start_kwh": t("metering.col.start"),
        "end_kwh": t("metering.col.end"),
        "energy_kwh": t("metering.col.energy"),
        "last_reading": t("metering.col.last", tz=tz.key),
    }
    column = st.column_config
    config: dict[str, Any] = {key: column.TextColumn(header) for key, header in headers.items()}
    for key in ("start_kwh", "end_kwh", "energy_kwh"):
        config[key] = column.NumberColumn(headers[key], format="%,.2f")
    config["last_reading"] = column.DatetimeColumn(headers["last_reading"],
                                                   format="YYYY-MM-DD HH:mm:ss")
    st.dataframe(data, key="metering_table", hide_index=True, column_config=config)
    st.caption(t("metering.note"))
    formats = {"start_kwh": ENERGY, "end_kwh": ENERGY, "energy_kwh": ENERGY,
               "last_reading": DATETIME}
    columns = [Column(key, header, formats.get(key)) for key, header in headers.items()]
    st.download_button(
        t("metering.export"), data=lambda: xlsx_bytes(data, columns, sheet="metering"),
        file_name=f"metering-{days[0]}-{days[1]}.xlsx", mime=XLSX_MIME, key="metering_export",
        icon=":material/download:", on_click="ignore",
    )


if __name__ == "__main__":
    render()
