"""Energy analysis: consumption and cost per day of the site, a building, a floor or a unit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from app import auth, i18n
from app.export import ENERGY, MONEY, XLSX_MIME, Column, xlsx_bytes
from app.i18n import t
from app.nav import Screen
from billing import reports
from billing.errors import BillingError
from billing.money import format_money
from billing.operators import can
from billing.reports import EnergyAnalysis, Places, Scope
from collector.readings import ReadingStore
from collector.tsdb import open_store
from schema.db import unit_of_work
from schema.models import Operator
from voltpay.settings import get_settings

CACHE_TTL_S = 60
DEFAULT_DAYS = 7
CENT = Decimal("0.01")
BAND_COLOURS = {
    "sharp": "#c0392b", "peak": "#e67e22", "flat": "#f1c40f", "valley": "#2e86c1",
    "deep_valley": "#1b4f72", "": "#7f8c8d", "uncharged": "#d5d8dc",
}

STRINGS = {
    "en": {
        "energy.nav": "Energy analysis",
        "energy.title": "Energy analysis",
        "energy.range": "Days",
        "energy.pick_end": "Pick the last day of the range as well.",
        "energy.building": "Building",
        "energy.floor": "Floor",
        "energy.unit": "Unit",
        "energy.all_buildings": "Whole site",
        "energy.all_floors": "Every floor",
        "energy.all_units": "Every unit",
        "energy.measure": "Show",
        "energy.measure.energy": "Energy (kWh)",
        "energy.measure.cost": "Cost ({currency})",
        "energy.empty": "No meters here yet — add meters to units in settings, or choose "
        "another place.",
        "energy.no_data": "No readings or charges from {start} to {end} — check that the "
        "collector is running, or choose other days.",
        "energy.metric.energy": "Energy (kWh)",
        "energy.metric.cost": "Cost ({currency})",
        "energy.metric.daily": "Average per day (kWh)",
        "energy.metric.help": "Previous {days} days ({start} – {end}): {value}",
        "energy.trend": "{days}-day average",
        "energy.by.building": "Bars are stacked by building.",
        "energy.by.floor": "Bars are stacked by floor.",
        "energy.by.unit": "Bars are stacked by unit.",
        "energy.by.meter": "Bars are stacked by meter.",
        "energy.by.band": "Bars are stacked by tariff band, as the meters were charged. Energy "
        "nobody was charged for (metering meters, meters without an open account) shows as "
        "Not charged.",
        "energy.stack": "Stack by",
        "energy.stack.band": "Tariff band",
        "energy.stack.place": "Place",
        "energy.band.sharp": "Sharp",
        "energy.band.peak": "Peak",
        "energy.band.flat": "Flat",
        "energy.band.valley": "Valley",
        "energy.band.deep_valley": "Deep valley",
        "energy.band.": "One rate",
        "energy.band.uncharged": "Not charged",
        "energy.col.band_energy": "{band} (kWh)",
        "energy.col.band_cost": "{band} ({currency})",
        "energy.days": "Per day",
        "energy.groups": "Per place, compared with the previous {days} days",
        "energy.col.date": "Date",
        "energy.col.energy": "Energy (kWh)",
        "energy.col.cost": "Cost ({currency})",
        "energy.col.trend": "{days}-day average (kWh)",
        "energy.col.place": "Place",
        "energy.col.share": "Share of energy (%)",
        "energy.col.previous_energy": "Previous energy (kWh)",
        "energy.col.previous_cost": "Previous cost ({currency})",
        "energy.col.change": "Energy change (%)",
        "energy.export_days": "Export days to Excel",
        "energy.export_groups": "Export places to Excel",
    },
    "zh": {
        "energy.nav": "能耗分析",
        "energy.title": "能耗分析",
        "energy.range": "日期",
        "energy.pick_end": "请再选择结束日期。",
        "energy.building": "楼栋",
        "energy.floor": "楼层",
        "energy.unit": "户号",
        "energy.all_buildings": "全部楼栋",
        "energy.all_floors": "全部楼层",
        "energy.all_units": "全部户号",
        "energy.measure": "显示",
        "energy.measure.energy": "电量 (kWh)",
        "energy.measure.cost": "电费（{currency}）",
        "energy.empty": "这里还没有电表——请在系统设置中为商铺添加电表，或选择其他位置。",
        "energy.no_data": "{start} 至 {end} 没有抄表数据或扣费记录——请检查采集服务是否运行，"
        "或选择其他日期。",
        "energy.metric.energy": "用电量 (kWh)",
        "energy.metric.cost": "电费（{currency}）",
        "energy.metric.daily": "日均用电 (kWh)",
        "energy.metric.help": "上一周期 {days} 天（{start} – {end}）：{value}",
        "energy.trend": "{days} 日平均",
        "energy.by.building": "柱形按楼栋堆叠。",
        "energy.by.floor": "柱形按楼层堆叠。",
        "energy.by.unit": "柱形按户号堆叠。",
        "energy.by.meter": "柱形按电表堆叠。",
        "energy.by.band": "柱形按计费时的电价时段堆叠。未计费的电量（计量表、未开户的电表）"
        "显示为“未计费”。",
        "energy.stack": "堆叠方式",
        "energy.stack.band": "电价时段",
        "energy.stack.place": "位置",
        "energy.band.sharp": "尖峰",
        "energy.band.peak": "高峰",
        "energy.band.flat": "平段",
        "energy.band.valley": "低谷",
        "energy.band.deep_valley": "深谷",
        "energy.band.": "单一电价",
        "energy.band.uncharged": "未计费",
        "energy.col.band_energy": "{band} (kWh)",
        "energy.col.band_cost": "{band}（{currency}）",
        "energy.days": "按日",
        "energy.groups": "按位置，与上一周期 {days} 天对比",
        "energy.col.date": "日期",
        "energy.col.energy": "电量 (kWh)",
        "energy.col.cost": "电费（{currency}）",
        "energy.col.trend": "{days} 日平均 (kWh)",
        "energy.col.place": "位置",
        "energy.col.share": "电量占比 (%)",
        "energy.col.previous_energy": "上期电量 (kWh)",
        "energy.col.previous_cost": "上期电费（{currency}）",
        "energy.col.change": "电量变化 (%)",
        "energy.export_days": "按日导出 Excel",
        "energy.export_groups": "按位置导出 Excel",
    },
}
# Streamlit runs this file again as the page script; the module import registered them then.
if STRINGS["en"].keys() - i18n.STRINGS["en"].keys():
    i18n.register(STRINGS)

SCREEN = Screen(module="energy", url_path="energy-analysis", title_key="energy.nav",
                permission="view", icon=":material/bar_chart:", section="section.reports",
                order=10)


@st.cache_resource(show_spinner=False)
def reading_store(timeseries_url: str, database_url: str) -> ReadingStore:
    """One time-series store client per process, shared by every session and report page."""
    return open_store(timeseries_url, database_url)


def today() -> date:
    return auth.utcnow().astimezone(get_settings().tz).date()


def chosen_range(key: str, label: str, days: int) -> tuple[date, date] | None:
    """A date range input ending today by default; None until both ends are picked."""
    end = today()
    value = st.date_input(label, value=(end - timedelta(days=days - 1), end), key=key,
                          format="YYYY-MM-DD")
    if isinstance(value, Sequence) and len(value) == 2:
        return value[0], value[1]
    st.info(t("energy.pick_end"))
    return None


def money(amount: Decimal) -> str:
    return f"{format_money(amount)} {get_settings().currency}"


def render() -> None:
    st.title(t("energy.title"))
    with unit_of_work(auth.database_url()) as session:
        operator = auth.current_operator(session)
        allowed = can(operator, "view")
        where = reports.places(session, operator=operator) if allowed else None
    if where is None or operator is None:
        st.error(t("denied.view"))
        return
    days = chosen_range("energy_range", t("energy.range"), DEFAULT_DAYS)
    scope = _scope(where)
    if days is None:
        return
    try:
        analysis = _analysis(auth.database_url(), operator.id, scope.building_id, scope.floor_id,
                             scope.unit_id, days[0], days[1])
    except BillingError as exc:
        st.error(str(exc))
        return
    if not analysis.groups:
        st.info(t("energy.empty"))
        return
    if not any(day.energy_kwh or day.cost for day in analysis.days):
        st.info(t("energy.no_data", start=days[0], end=days[1]))
        return
    _metrics(analysis)
    _chart(analysis)
    _days_table(analysis)
    _groups_table(analysis)


def _clear(*keys: str) -> None:
    for key in keys:
        st.session_state.pop(key, None)


def _scope(where: Places) -> Scope:
    building_col, floor_col, unit_col = st.columns(3)
    names = {p.id: p.name for p in [*where.buildings, *where.floors, *where.units]}
    building = building_col.selectbox(
        t("energy.building"), [None, *(b.id for b in where.buildings)],
        format_func=lambda i: t("energy.all_buildings") if i is None else names[i],
        key="energy_building", on_change=_clear, args=("energy_floor", "energy_unit"),
    )
    floors = [f.id for f in where.floors if f.parent_id == building] if building else []
    floor = floor_col.selectbox(
        t("energy.floor"), [None, *floors],
        format_func=lambda i: t("energy.all_floors") if i is None else names[i],
        key="energy_floor", disabled=not floors, on_change=_clear, args=("energy_unit",),
    )
    floor = floor if floor in floors else None
    units = [u.id for u in where.units if u.parent_id == floor] if floor else []
    unit = unit_col.selectbox(
        t("energy.unit"), [None, *units],
        format_func=lambda i: t("energy.all_units") if i is None else names[i],
        key="energy_unit", disabled=not units,
    )
    return Scope(building_id=building, floor_id=floor, unit_id=unit if unit in units else None)


@st.cache_data(ttl=CACHE_TTL_S, max_entries=64, show_spinner=False)
def _analysis(
    database_url: str,
    operator_id: int,
    building_id: int | None,
    floor_id: int | None,
    unit_id: int | None,
    start_on: date,
    end_on: date,
) -> EnergyAnalysis:
    """Cached per operator: the service checks the permission whenever it runs."""
    settings = get_settings()
    with unit_of_work(database_url) as session:
        query = reports.energy_query(
            session, operator=session.get(Operator, operator_id),
            scope=Scope(building_id, floor_id, unit_id), start_on=start_on, end_on=end_on,
            tz=settings.tz,
        )
    # After the transaction: the embedded store reads the same database (see billing.reports).
    return reports.energy_analysis(query, reading_store(settings.timeseries_url, database_url))


def _delta(current: Decimal, previous: Decimal) -> str | None:
    change = reports.change_pct(current, previous)
    return None if change is None else f"{change:+}%"


def _metrics(analysis: EnergyAnalysis) -> None:
    currency = get_settings().currency
    days = len(analysis.days)
    period = {"days": days, "start": analysis.previous_start_on, "end": analysis.previous_end_on}
    energy, cost, daily = st.columns(3)
    energy.metric(
        t("energy.metric.energy"), format_money(analysis.energy_kwh),
        delta=_delta(analysis.energy_kwh, analysis.previous_energy_kwh), delta_color="inverse",
        help=t("energy.metric.help", value=f"{format_money(analysis.previous_energy_kwh)} kWh",
               **period),
        border=True,
    )
    cost.metric(
        t("energy.metric.cost", currency=currency), format_money(analysis.cost),
        delta=_delta(analysis.cost, analysis.previous_cost), delta_color="inverse",
        help=t("energy.metric.help", value=money(analysis.previous_cost), **period),
        border=True,
    )
    daily.metric(t("energy.metric.daily"), format_money(analysis.energy_kwh / days), border=True)


def _bands(analysis: EnergyAnalysis) -> list[str]:
    """The tariff bands charged in the range, in band order."""
    seen = {band for day in analysis.days for band in day.by_band}
    return [band for band in reports.BAND_ORDER if band in seen]


def _uncharged_kwh(day: reports.DayTotal) -> Decimal:
    charged = sum((kwh for kwh, _ in day.by_band.values()), Decimal(0))
    return max(day.energy_kwh - charged, Decimal(0))


def _chart(analysis: EnergyAnalysis) -> None:
    currency = get_settings().currency
    measure_col, stack_col = st.columns(2)
    measure = measure_col.radio(
        t("energy.measure"), ("energy", "cost"), horizontal=True, key="energy_measure",
        format_func=lambda m: t(f"energy.measure.{m}", currency=currency),
    )
    stack = stack_col.radio(
        t("energy.stack"), ("band", "place"), horizontal=True, key="energy_stack",
        format_func=lambda s: t(f"energy.stack.{s}"),
    )
    index = 0 if measure == "energy" else 1
    x = [day.on for day in analysis.days]
    figure = go.Figure()
    if stack == "band":
        for band in _bands(analysis):
            figure.add_bar(
                x=x, name=t(f"energy.band.{band}"), marker_color=BAND_COLOURS[band],
                y=[float(day.by_band.get(band, (0, 0))[index]) for day in analysis.days],
            )
        uncharged = [float(_uncharged_kwh(day)) for day in analysis.days]
        if index == 0 and any(uncharged):
            figure.add_bar(x=x, name=t("energy.band.uncharged"), y=uncharged,
                           marker_color=BAND_COLOURS["uncharged"])
    else:
        for group in analysis.groups:
            figure.add_bar(
                x=x, name=group.label,
                y=[float(day.by_group.get(group.key, (0, 0))[index]) for day in analysis.days],
            )
    trend = [day.trend_kwh if index == 0 else day.trend_cost for day in analysis.days]
    figure.add_scatter(
        x=x, y=[float(value) for value in trend], mode="lines+markers",
        name=t("energy.trend", days=reports.TREND_DAYS),
        line={"color": "#333333", "dash": "dot", "width": 2},
    )
    figure.update_layout(
        barmode="stack", height=380, margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"orientation": "h", "y": -0.15},
        yaxis_title=t(f"energy.measure.{measure}", currency=currency),
        xaxis={"type": "date", "tickformat": "%Y-%m-%d"},
    )
    st.plotly_chart(figure, key="energy_chart")
    st.caption(t("energy.by.band") if stack == "band" else t(f"energy.by.{analysis.group}"))


def _days_table(analysis: EnergyAnalysis) -> None:
    currency = get_settings().currency
    trend_days = reports.TREND_DAYS
    bands = _bands(analysis)
    st.subheader(t("energy.days"))
    rows: list[dict[str, Any]] = []
    for day in analysis.days:
        row: dict[str, Any] = {
            "date": day.on,
            "energy_kwh": day.energy_kwh.quantize(CENT),
            "cost": day.cost.quantize(CENT),
            "trend_kwh": day.trend_kwh.quantize(CENT),
        }
        for band in bands:
            kwh, cost = day.by_band.get(band, (Decimal(0), Decimal(0)))
            row[f"kwh_{band}"], row[f"cost_{band}"] = kwh.quantize(CENT), cost.quantize(CENT)
        rows.append(row)
    headers = {
        "date": t("energy.col.date"),
        "energy_kwh": t("energy.col.energy"),
        "cost": t("energy.col.cost", currency=currency),
        "trend_kwh": t("energy.col.trend", days=trend_days),
    }
    for band in bands:
        name = t(f"energy.band.{band}")
        headers[f"kwh_{band}"] = t("energy.col.band_energy", band=name)
        headers[f"cost_{band}"] = t("energy.col.band_cost", band=name, currency=currency)
    columns = [
        Column(key, header, None if key == "date" else MONEY if "cost" in key else ENERGY)
        for key, header in headers.items()
    ]
    column = st.column_config
    st.dataframe(
        rows, key="energy_days_table", hide_index=True,
        column_config={
            key: column.DateColumn(header, format="YYYY-MM-DD") if key == "date"
            else column.NumberColumn(header, format="%,.2f")
            for key, header in headers.items()
        },
    )
    st.download_button(
        t("energy.export_days"), data=lambda: xlsx_bytes(rows, columns, sheet="energy per day"),
        file_name=f"energy-{analysis.start_on}-{analysis.end_on}.xlsx", mime=XLSX_MIME,
        key="energy_days_export", icon=":material/download:", on_click="ignore",
    )


def _groups_table(analysis: EnergyAnalysis) -> None:
    currency = get_settings().currency
    st.subheader(t("energy.groups", days=len(analysis.days)))
    total = analysis.energy_kwh
    rows: list[dict[str, Any]] = [
        {
            "place": group.label,
            "energy_kwh": group.energy_kwh.quantize(CENT),
            "share_pct": (group.energy_kwh * 100 / total).quantize(Decimal("0.1"))
            if total else None,
            "cost": group.cost.quantize(CENT),
            "previous_energy_kwh": group.previous_energy_kwh.quantize(CENT),
            "previous_cost": group.previous_cost.quantize(CENT),
            "change_pct": reports.change_pct(group.energy_kwh, group.previous_energy_kwh),
        }
        for group in analysis.groups
    ]
    headers = {
        "place": t("energy.col.place"),
        "energy_kwh": t("energy.col.energy"),
        "share_pct": t("energy.col.share"),
        "cost": t("energy.col.cost", currency=currency),
        "previous_energy_kwh": t("energy.col.previous_energy"),
        "previous_cost": t("energy.col.previous_cost", currency=currency),
        "change_pct": t("energy.col.change"),
    }
    formats = {"energy_kwh": ENERGY, "share_pct": "0.0", "cost": MONEY,
               "previous_energy_kwh": ENERGY, "previous_cost": MONEY, "change_pct": "+0.0;-0.0"}
    columns = [Column(key, header, formats.get(key)) for key, header in headers.items()]
    column = st.column_config
    st.dataframe(
        rows, key="energy_groups_table", hide_index=True,
        column_config={
            key: column.TextColumn(header) if key == "place"
            else column.NumberColumn(header, format="%.1f" if key.endswith("pct") else "%,.2f")
            for key, header in headers.items()
        },
    )
    st.download_button(
        t("energy.export_groups"),
        data=lambda: xlsx_bytes(rows, columns, sheet="energy per place"),
        file_name=f"energy-places-{analysis.start_on}-{analysis.end_on}.xlsx", mime=XLSX_MIME,
        key="energy_groups_export", icon=":material/download:", on_click="ignore",
    )


if __name__ == "__main__":
    render()
