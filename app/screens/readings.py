"""Reading history of one meter: every reading over a few days, in the site's time."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import streamlit as st

from app import auth, i18n
from app.export import DATETIME, ENERGY, XLSX_MIME, Column, xlsx_bytes
from app.i18n import t
from app.nav import Screen
from app.screens.energy import chosen_range, reading_store
from billing import reports
from billing.errors import BillingError
from billing.operators import can
from billing.reports import MeterChoice
from collector.readings import MeterReading
from schema.db import unit_of_work
from voltpay.settings import get_settings

DEFAULT_DAYS = 2

STRINGS = {
    "en": {
        "readings.nav": "Reading history",
        "readings.title": "Reading history",
        "readings.search": "Find a meter",
        "readings.search_placeholder": "Meter serial, unit number or shop name",
        "readings.meter": "Meter",
        "readings.meter_label": "{serial} · {unit} · {gateway}",
        "readings.choose": "Choose a meter",
        "readings.no_meters": "No meters yet — add meters in settings.",
        "readings.none_match": "No meter matches “{text}” — try part of a serial such as "
        "M0001, or a unit number.",
        "readings.range": "Days (at most {days})",
        "readings.empty": "No readings of {meter} from {start} to {end} — check that the "
        "collector reaches the meter, or choose other days. Archived days keep only daily "
        "totals (see Energy analysis).",
        "readings.count": "{count} readings",
        "readings.col.time": "Time ({tz})",
        "readings.col.energy": "Energy (kWh)",
        "readings.col.power": "Power (kW)",
        "readings.col.voltage": "Voltage (V)",
        "readings.col.current": "Current (A)",
        "readings.col.relay": "Relay",
        "readings.export": "Export to Excel",
    },
    "zh": {
        "readings.nav": "抄表历史",
        "readings.title": "抄表历史",
        "readings.search": "查找电表",
        "readings.search_placeholder": "电表编号、户号或商铺名称",
        "readings.meter": "电表",
        "readings.meter_label": "{serial} · {unit} · {gateway}",
        "readings.choose": "请选择电表",
        "readings.no_meters": "还没有电表——请在系统设置中添加电表。",
        "readings.none_match": "没有与“{text}”匹配的电表——请输入部分电表编号（如 M0001）或户号。",
        "readings.range": "日期（最多 {days} 天）",
        "readings.empty": "{meter} 在 {start} 至 {end} 没有读数——请检查采集服务能否连上该电表，"
        "或选择其他日期。已转存的日期只保留日合计（见能耗分析）。",
        "readings.count": "共 {count} 条读数",
        "readings.col.time": "时间 ({tz})",
        "readings.col.energy": "电量 (kWh)",
        "readings.col.power": "功率 (kW)",
        "readings.col.voltage": "电压 (V)",
        "readings.col.current": "电流 (A)",
        "readings.col.relay": "继电器",
        "readings.export": "导出 Excel",
    },
}
# Streamlit runs this file again as the page script; the module import registered them then.
if STRINGS["en"].keys() - i18n.STRINGS["en"].keys():
    i18n.register(STRINGS)

SCREEN = Screen(module="readings", url_path="reading-history", title_key="readings.nav",
                permission="view", icon=":material/history:", section="section.reports",
                order=30)


def render() -> None:
    st.title(t("readings.title"))
    with unit_of_work(auth.database_url()) as session:
        allowed = can(auth.current_operator(session), "view")
    if not allowed:
        st.error(t("denied.view"))
        return
    text = st.text_input(t("readings.search"), key="readings_search",
                         placeholder=t("readings.search_placeholder"), on_change=_new_search)
    with unit_of_work(auth.database_url()) as session:
        meters = reports.find_meters(session, operator=auth.current_operator(session), text=text)
    if not meters:
        st.info(t("readings.none_match", text=text.strip()) if text.strip()
                else t("readings.no_meters"))
        return
    by_id = {meter.id: meter for meter in meters}
    meter_id = st.selectbox(
        t("readings.meter"), list(by_id), index=0 if len(by_id) == 1 else None,
        format_func=lambda key: _label(by_id[key]), placeholder=t("readings.choose"),
        key="readings_meter",
    )
    days = chosen_range("readings_range", t("readings.range", days=reports.MAX_READING_DAYS),
                        DEFAULT_DAYS)
    if meter_id is None or days is None:
        return
    settings = get_settings()
    try:
        with unit_of_work(auth.database_url()) as session:
            query = reports.reading_query(
                session, operator=auth.current_operator(session), meter_id=meter_id,
                start_on=days[0], end_on=days[1], tz=settings.tz,
            )
    except BillingError as exc:
        st.error(str(exc))
        return
    # After the transaction: the embedded store reads the same database (see billing.reports).
    readings = reports.reading_history(
        query, reading_store(settings.timeseries_url, auth.database_url())
    )
    if not readings:
        st.info(t("readings.empty", meter=query.meter.serial, start=days[0], end=days[1]))
        return
    _chart(readings)
    _table(readings, query.meter, days)


def _new_search() -> None:
    # A new search offers other meters: choose again (the only match is then chosen for you).
    st.session_state.pop("readings_meter", None)


def _label(meter: MeterChoice) -> str:
    unit = f"{meter.unit} {meter.unit_name}".strip() if meter.unit else "-"
    return t("readings.meter_label", serial=meter.serial, unit=unit, gateway=meter.gateway)


def _relay(closed: bool | None) -> str:
    return t("relay.unknown") if closed is None else t("relay.closed" if closed else "relay.open")


def _chart(readings: list[MeterReading]) -> None:
    tz = get_settings().tz
    x = [r.at.astimezone(tz).replace(tzinfo=None) for r in readings]
    figure = go.Figure()
    if any(r.power_kw is not None for r in readings):
        figure.add_scatter(x=x, y=[None if r.power_kw is None else float(r.power_kw)
                                   for r in readings], mode="lines", name=t("readings.col.power"))
        title = t("readings.col.power")
    else:
        figure.add_scatter(x=x, y=[float(r.energy_kwh) for r in readings], mode="lines",
                           name=t("readings.col.energy"))
        title = t("readings.col.energy")
    figure.update_layout(height=260, margin={"l": 10, "r": 10, "t": 10, "b": 10},
                         yaxis_title=title, showlegend=False)
    st.plotly_chart(figure, key="readings_chart")


def _table(readings: list[MeterReading], meter: MeterChoice, days: tuple[Any, Any]) -> None:
    tz = get_settings().tz
    data: list[dict[str, Any]] = [
        {
            # Local wall-clock time: the table and Excel show it as the site reads it.
            "at": r.at.astimezone(tz).replace(tzinfo=None),
            "energy_kwh": r.energy_kwh,
            "power_kw": r.power_kw,
            "voltage_v": r.voltage_v,
            "current_a": r.current_a,
            "relay": _relay(r.relay_closed),
        }
        for r in readings
    ]
    headers = {
        "at": t("readings.col.time", tz=tz.key),
        "energy_kwh": t("readings.col.energy"),
        "power_kw": t("readings.col.power"),
        "voltage_v": t("readings.col.voltage"),
        "current_a": t("readings.col.current"),
        "relay": t("readings.col.relay"),
    }
    column = st.column_config
    st.caption(t("readings.count", count=len(data)))
    st.dataframe(
        data, key="readings_table", hide_index=True,
        column_config={
            "at": column.DatetimeColumn(headers["at"], format="YYYY-MM-DD HH:mm:ss"),
            "energy_kwh": column.NumberColumn(headers["energy_kwh"], format="%,.2f"),
            "power_kw": column.NumberColumn(headers["power_kw"], format="%.3f"),
            "voltage_v": column.NumberColumn(headers["voltage_v"], format="%.1f"),
            "current_a": column.NumberColumn(headers["current_a"], format="%.2f"),
            "relay": column.TextColumn(headers["relay"]),
        },
    )
    formats = {"at": DATETIME, "energy_kwh": ENERGY, "power_kw": "0.000", "voltage_v": "0.0",
               "current_a": "0.00"}
    columns = [Column(key, header, formats.get(key)) for key, header in headers.items()]
    st.download_button(
        t("readings.export"), data=lambda: xlsx_bytes(data, columns, sheet=meter.serial),
        file_name=f"readings-{meter.serial}-{days[0]}-{days[1]}.xlsx", mime=XLSX_MIME,
        key="readings_export", icon=":material/download:", on_click="ignore",
    )


if __name__ == "__main__":
    render()
