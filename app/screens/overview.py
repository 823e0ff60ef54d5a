"""Meters overview: balances, relay states and power, refreshed by itself."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import streamlit as st

from app import auth
from app.i18n import t
from app.nav import Screen
from billing.money import format_money
from billing.operators import can
from billing.views import MeterStatus, meter_status, summarise
from schema.db import unit_of_work
from voltpay.settings import get_settings

REFRESH_S = 5
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


SCREEN = Screen(module="overview", url_path="meters", title_key="nav.overview", permission="view",
                icon=":material/bolt:", section="section.operate", order=10)


def render() -> None:
    st.title(t("overview.title"))
    st.caption(get_settings().site_name)
    meters_panel()


@st.fragment(run_every=REFRESH_S)
def meters_panel() -> None:
    settings = get_settings()
    with unit_of_work(settings.database_url) as session:
        allowed = can(auth.current_operator(session), "view")
        rows = meter_status(session) if allowed else []
    if not allowed:
        st.error(t("denied.view"))
        return
    if not rows:
        st.info(t("overview.empty"))
        return
    _summary(rows, settings.currency)
    _table(rows, settings.currency, settings.tz)
    st.caption(
        t("overview.updated", time=auth.utcnow().astimezone(settings.tz).strftime(TIME_FORMAT),
          seconds=REFRESH_S)
    )


def _summary(rows: list[MeterStatus], currency: str) -> None:
    summary = summarise(rows)
    meters, arrears, tripped, total = st.columns(4)
    meters.metric(t("metric.meters"), summary.meters, border=True)
    arrears.metric(t("metric.arrears"), summary.accounts_in_arrears, border=True)
    tripped.metric(t("metric.tripped"), summary.tripped_meters, border=True)
    total.metric(
        t("metric.total_balance", currency=currency),
        format_money(summary.total_balance),
        border=True,
    )


def relay_label(relay: str) -> str:
    return t(f"relay.{relay}") if relay in ("closed", "open") else t("relay.unknown")


def _local_time(at: datetime | None, tz: ZoneInfo) -> str | None:
    return at.astimezone(tz).strftime(TIME_FORMAT) if at else None


def _table(rows: Sequence[MeterStatus], currency: str, tz: ZoneInfo) -> None:
    data: list[dict[str, Any]] = [
        {
            "unit": row.unit,
            "building": row.building,
            "floor": row.floor,
            "meter": row.meter,
            "account": row.account,
            "tenant": row.tenant,
            "balance": row.balance,
            "relay": relay_label(row.relay),
            "power_kw": row.power_kw,
            "last_reading": _local_time(row.last_reading_at, tz),
        }
        for row in rows
    ]
    column = st.column_config
    st.dataframe(
        data,
        key="meters_table",
        hide_index=True,
        column_config={
            "unit": column.TextColumn(t("col.unit")),
            "building": column.TextColumn(t("col.building")),
            "floor": column.TextColumn(t("col.floor")),
            "meter": column.TextColumn(t("col.meter")),
            "account": column.TextColumn(t("col.account")),
            "tenant": column.TextColumn(t("col.tenant")),
            "balance": column.NumberColumn(t("col.balance"), format=f"%,.2f {currency}"),
            "relay": column.TextColumn(t("col.relay")),
            "power_kw": column.NumberColumn(t("col.power"), format="%.3f"),
            "last_reading": column.TextColumn(t("col.last_reading", tz=tz.key)),
        },
    )


if __name__ == "__main__":
    render()
