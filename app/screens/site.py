"""Buildings → floors → units (户号). Also the editor the settings screens share: pick a record (or
"new"), edit it in a form, save or delete it through a billing/site.py service."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import streamlit as st
from sqlalchemy.orm import Session

from app import auth
from app.export import XLSX_MIME, Column, xlsx_bytes
from app.i18n import STRINGS, register, t
from app.nav import Screen
from billing import site
from billing.errors import BillingError
from billing.operators import can
from billing.site import InvalidInput
from schema.db import unit_of_work
from schema.models import Building, Floor, Operator, Unit

SCREEN = Screen(module="site", url_path="buildings-and-units", title_key="site.nav",
                permission="configure", icon=":material/apartment:",
                section="section.settings", order=10)
NEW = 0  # the "new record" choice of an editor's picker

# Streamlit executes this file afresh on every run of the page: register the strings once.
if "site.nav" not in STRINGS["en"]:
    register({
        "en": {
            "site.nav": "Buildings and units",
            "site.title": "Buildings, floors and units",
            "site.caption": "A building has floors; a floor has units (户号), the shops or offices "
            "meters are assigned to.",
            "site.denied": "You are not allowed to change the site settings. "
            "Ask an administrator for the engineer role.",
            "site.new": "+ New",
            "site.choose": "Choose…",
            "site.add": "Add",
            "site.save": "Save changes",
            "site.delete": "Delete",
            "site.saved": "Saved {name}.",
            "site.deleted": "Deleted {name}.",
            "site.export": "Export to Excel",
            "site.tab_buildings": "Buildings",
            "site.tab_floors": "Floors",
            "site.tab_units": "Units",
            "site.building_pick": "Building to edit",
            "site.building_code": "Building code",
            "site.building_name": "Building name",
            "site.buildings_empty": "No buildings yet — add the first one here, or import a "
            "sheet under Bulk import.",
            "site.floor_pick": "Floor to edit",
            "site.floor_building": "Building",
            "site.floor_level": "Floor level (B1 = -1)",
            "site.floor_name": "Floor name",
            "site.floors_need_building": "Add a building first: floors belong to a building.",
            "site.floors_empty": "No floors yet — add one here.",
            "site.unit_pick": "Unit to edit",
            "site.unit_floor": "Floor",
            "site.unit_number": "Unit number (户号)",
            "site.unit_name": "Unit name",
            "site.unit_area": "Area (m²)",
            "site.units_need_floor": "Add a floor first: units belong to a floor.",
            "site.units_empty": "No units yet — add one here.",
            "site.col_code": "Building code",
            "site.col_name": "Name",
            "site.col_building": "Building",
            "site.col_level": "Level",
            "site.col_floor": "Floor",
            "site.col_floors": "Floors",
            "site.col_units": "Units",
            "site.col_unit": "Unit",
            "site.col_area": "Area (m²)",
            "site.col_meters": "Meters",
        },
        "zh": {
            "site.nav": "楼栋与户号",
            "site.title": "楼栋、楼层与户号",
            "site.caption": "楼栋包含楼层，楼层包含户号（商铺或办公室），电表挂在户号下。",
            "site.denied": "您没有修改系统设置的权限，请联系管理员开通工程师角色。",
            "site.new": "+ 新建",
            "site.choose": "请选择…",
            "site.add": "添加",
            "site.save": "保存修改",
            "site.delete": "删除",
            "site.saved": "已保存 {name}。",
            "site.deleted": "已删除 {name}。",
            "site.export": "导出 Excel",
            "site.tab_buildings": "楼栋",
            "site.tab_floors": "楼层",
            "site.tab_units": "户号",
            "site.building_pick": "要编辑的楼栋",
            "site.building_code": "楼栋编码",
            "site.building_name": "楼栋名称",
            "site.buildings_empty": "还没有楼栋——在这里添加第一栋，或在“批量导入”中导入表格。",
            "site.floor_pick": "要编辑的楼层",
            "site.floor_building": "楼栋",
            "site.floor_level": "楼层（地下一层为 -1）",
            "site.floor_name": "楼层名称",
            "site.floors_need_building": "请先添加楼栋：楼层属于楼栋。",
            "site.floors_empty": "还没有楼层——在这里添加。",
            "site.unit_pick": "要编辑的户号",
            "site.unit_floor": "楼层",
            "site.unit_number": "户号",
            "site.unit_name": "商铺名称",
            "site.unit_area": "面积（m²）",
            "site.units_need_floor": "请先添加楼层：户号属于楼层。",
            "site.units_empty": "还没有户号——在这里添加。",
            "site.col_code": "楼栋编码",
            "site.col_name": "名称",
            "site.col_building": "楼栋",
            "site.col_level": "楼层号",
            "site.col_floor": "楼层",
            "site.col_floors": "楼层数",
            "site.col_units": "户数",
            "site.col_unit": "户号",
            "site.col_area": "面积（m²）",
            "site.col_meters": "电表数",
        },
    })


# --- The shared editor -------------------------------------------------------------------------

Values = dict[str, Any]


@dataclass(frozen=True)
class Editor:
    """One kind of record on a settings screen. Widget keys are `{prefix}_pick`,
    `{prefix}_{field}` for each field, `{prefix}_save` and `{prefix}_delete`.

    Saving and deleting run in the buttons' callbacks, before the page is drawn again, so the
    tables below show the change at once and the form can be refilled."""

    prefix: str
    fields: tuple[str, ...]
    blank: Callable[[], Values]  # the form of a new record
    load: Callable[[Session, int], Values | None]  # the form of a stored one
    # Each returns the record's id (save) and its name as the operator knows it.
    save: Callable[[Session, int, Values, Operator | None, datetime], tuple[int, str]]
    delete: Callable[[Session, int, Operator | None, datetime], str]

    def key(self, field: str) -> str:
        return f"{self.prefix}_{field}"

    @property
    def pick_key(self) -> str:
        return f"{self.prefix}_pick"

    def picked(self) -> int:
        return int(st.session_state.get(self.pick_key, NEW))

    def _fill(self, record_id: int) -> None:
        values: Values | None = None
        if record_id != NEW:
            with unit_of_work(auth.database_url()) as session:
                values = self.load(session, record_id)
        if values is None:
            record_id, values = NEW, self.blank()
        st.session_state[self.pick_key] = record_id
        for field in self.fields:
            st.session_state[self.key(field)] = values[field]

    def prepare(self, ids: Sequence[int]) -> list[int]:
        """The picker's choices; the form filled on the first run or when the record picked was
        deleted meanwhile. Call before drawing the editor's widgets."""
        choices = [NEW, *ids]
        if self.pick_key not in st.session_state or self.picked() not in choices:
            self._fill(NEW)
        return choices

    def on_pick(self) -> None:
        self._fill(self.picked())

    def _run(self, action: Callable[[Session, Operator | None, datetime], str]) -> bool:
        try:
            with unit_of_work(auth.database_url()) as session:
                name = action(session, auth.current_operator(session), auth.utcnow())
        except InvalidInput as exc:
            st.session_state[f"{self.prefix}_errors"] = [p.message for p in exc.problems]
            return False
        except BillingError as exc:
            st.session_state[f"{self.prefix}_errors"] = [str(exc)]
            return False
        st.session_state[f"{self.prefix}_flash"] = name
        return True

    def on_save(self) -> None:
        values = {field: st.session_state.get(self.key(field)) for field in self.fields}
        record_id = self.picked()
        saved: list[int] = []

        def action(session: Session, operator: Operator | None, now: datetime) -> str:
            new_id, name = self.save(session, record_id, values, operator, now)
            saved.append(new_id)
            return t("site.saved", name=name)

        if self._run(action):
            self._fill(saved[0])

    def on_delete(self) -> None:
        record_id = self.picked()

        def action(session: Session, operator: Operator | None, now: datetime) -> str:
            return t("site.deleted", name=self.delete(session, record_id, operator, now))

        if self._run(action):
            self._fill(NEW)

    def messages(self) -> None:
        """What the last save or delete said, once."""
        flash = st.session_state.pop(f"{self.prefix}_flash", None)
        if flash:
            st.success(flash)
        for message in st.session_state.pop(f"{self.prefix}_errors", []):
            st.error(message)

    def picker(self, label: str, ids: Sequence[int], name_of: Callable[[int], str]) -> int:
        choices = self.prepare(ids)
        st.selectbox(
            label, choices, key=self.pick_key, on_change=self.on_pick,
            format_func=lambda i: t("site.new") if i == NEW else name_of(i),
        )
        return self.picked()

    def buttons(self) -> None:
        """The form's submit button (call inside the form)."""
        st.form_submit_button(
            t("site.add") if self.picked() == NEW else t("site.save"), type="primary",
            key=f"{self.prefix}_save", on_click=self.on_save,
        )

    def delete_button(self) -> None:
        if self.picked() != NEW:
            st.button(t("site.delete"), key=f"{self.prefix}_delete", on_click=self.on_delete,
                      icon=":material/delete:")


def text_of(value: object) -> str:
    """A stored value as a form shows it: blank for none."""
    return "" if value is None else str(value)


def allowed() -> bool:
    """Whether the operator may configure the site; says so when not."""
    with unit_of_work(auth.database_url()) as session:
        ok = can(auth.current_operator(session), site.PERMISSION)
    if not ok:
        st.error(t("site.denied"))
    return ok


def table(
    rows: list[dict[str, Any]], columns: Sequence[Column], *, key: str, sheet: str,
    file_name: str, column_config: dict[str, Any] | None = None,
) -> None:
    """A table on screen with its Excel export."""
    st.dataframe(
        rows, key=key, hide_index=True,
        column_order=[c.key for c in columns],
        column_config={c.key: c.header for c in columns} | (column_config or {}),
    )
    st.download_button(
        # Drawn when clicked: a 10,000-row workbook takes a while, the page must not.
        t("site.export"), data=lambda: xlsx_bytes(rows, columns, sheet=sheet),
        file_name=file_name,
        mime=XLSX_MIME, key=f"{key}_xlsx", icon=":material/download:",
    )


# --- Buildings, floors, units ------------------------------------------------------------------


def _save_building(
    session: Session, record_id: int, values: Values, operator: Operator | None, now: datetime
) -> tuple[int, str]:
    if record_id == NEW:
        building = site.create_building(session, values, operator=operator, now=now)
    else:
        building = site.update_building(session, record_id, values, operator=operator, now=now)
    return building.id, building.code


def _load_building(session: Session, record_id: int) -> Values | None:
    building = session.get(Building, record_id)
    return None if building is None else {"code": building.code, "name": building.name}


def _delete_building(session: Session, record_id: int, operator: Operator | None,
                     now: datetime) -> str:
    building = session.get_one(Building, record_id)
    code = building.code
    site.delete_building(session, record_id, operator=operator, now=now)
    return code


BUILDINGS = Editor(
    prefix="site_building", fields=("code", "name"), blank=lambda: {"code": "", "name": ""},
    load=_load_building, save=_save_building, delete=_delete_building,
)


def _save_floor(
    session: Session, record_id: int, values: Values, operator: Operator | None, now: datetime
) -> tuple[int, str]:
    if record_id == NEW:
        if values["building"] is None:
            raise BillingError(t("site.floors_need_building"))
        floor = site.create_floor(session, values["building"], values, operator=operator, now=now)
    else:
        floor = site.update_floor(session, record_id, values, operator=operator, now=now)
    return floor.id, floor.name


def _load_floor(session: Session, record_id: int) -> Values | None:
    floor = session.get(Floor, record_id)
    if floor is None:
        return None
    return {"building": floor.building_id, "level": str(floor.level), "name": floor.name}


def _delete_floor(session: Session, record_id: int, operator: Operator | None,
                  now: datetime) -> str:
    name = session.get_one(Floor, record_id).name
    site.delete_floor(session, record_id, operator=operator, now=now)
    return name


FLOORS = Editor(
    prefix="site_floor", fields=("building", "level", "name"),
    blank=lambda: {"building": None, "level": "", "name": ""},
    load=_load_floor, save=_save_floor, delete=_delete_floor,
)


def _save_unit(
    session: Session, record_id: int, values: Values, operator: Operator | None, now: datetime
) -> tuple[int, str]:
    if values["floor"] is None:
        raise BillingError(t("site.units_need_floor"))
    if record_id == NEW:
        unit = site.create_unit(session, values["floor"], values, operator=operator, now=now)
    else:
        unit = site.update_unit(session, record_id, values, floor_id=values["floor"],
                                operator=operator, now=now)
    return unit.id, unit.number


def _load_unit(session: Session, record_id: int) -> Values | None:
    unit = session.get(Unit, record_id)
    if unit is None:
        return None
    return {"floor": unit.floor_id, "number": unit.number, "name": unit.name,
            "area_m2": text_of(unit.area_m2)}


def _delete_unit(session: Session, record_id: int, operator: Operator | None,
                 now: datetime) -> str:
    number = session.get_one(Unit, record_id).number
    site.delete_unit(session, record_id, operator=operator, now=now)
    return number


UNITS = Editor(
    prefix="site_unit", fields=("floor", "number", "name", "area_m2"),
    blank=lambda: {"floor": None, "number": "", "name": "", "area_m2": ""},
    load=_load_unit, save=_save_unit, delete=_delete_unit,
)


def render() -> None:
    st.title(t("site.title"))
    st.caption(t("site.caption"))
    if not allowed():
        return
    with unit_of_work(auth.database_url()) as session:
        buildings, floors, units = site.buildings(session), site.floors(session), site.units(
            session)
    tab_buildings, tab_floors, tab_units = st.tabs(
        [t("site.tab_buildings"), t("site.tab_floors"), t("site.tab_units")]
    )
    with tab_buildings:
        _buildings(buildings)
    with tab_floors:
        _floors(buildings, floors)
    with tab_units:
        _units(floors, units)


def _buildings(rows: list[site.BuildingRow]) -> None:
    by_id = {row.id: row for row in rows}
    BUILDINGS.messages()
    BUILDINGS.picker(t("site.building_pick"), list(by_id),
                     lambda i: f"{by_id[i].code} · {by_id[i].name}")
    with st.form("site_building_form"):
        st.text_input(t("site.building_code"), key=BUILDINGS.key("code"), placeholder="A")
        st.text_input(t("site.building_name"), key=BUILDINGS.key("name"),
                      placeholder="Building A A栋")
        BUILDINGS.buttons()
    BUILDINGS.delete_button()
    if not rows:
        st.info(t("site.buildings_empty"))
        return
    table(
        [{"code": r.code, "name": r.name, "floors": r.floors, "units": r.units} for r in rows],
        [Column("code", t("site.col_code")), Column("name", t("site.col_name")),
         Column("floors", t("site.col_floors")), Column("units", t("site.col_units"))],
        key="site_buildings", sheet=t("site.tab_buildings"), file_name="buildings.xlsx",
    )


def _floors(buildings: list[site.BuildingRow], rows: list[site.FloorRow]) -> None:
    if not buildings:
        st.info(t("site.floors_need_building"))
        return
    codes = {b.id: b.code for b in buildings}
    by_id = {row.id: row for row in rows}
    FLOORS.messages()
    picked = FLOORS.picker(t("site.floor_pick"), list(by_id),
                           lambda i: f"{by_id[i].building} · {by_id[i].level} · {by_id[i].name}")
    with st.form("site_floor_form"):
        # A floor stays in its building: a new one is added there instead.
        st.selectbox(t("site.floor_building"), list(codes), format_func=codes.__getitem__,
                     key=FLOORS.key("building"), disabled=picked != NEW,
                     placeholder=t("site.choose"))
        st.text_input(t("site.floor_level"), key=FLOORS.key("level"), placeholder="1")
        st.text_input(t("site.floor_name"), key=FLOORS.key("name"), placeholder="A1F")
        FLOORS.buttons()
    FLOORS.delete_button()
    if not rows:
        st.info(t("site.floors_empty"))
        return
    table(
        [{"building": r.building, "level": r.level, "name": r.name, "units": r.units}
         for r in rows],
        [Column("building", t("site.col_building")), Column("level", t("site.col_level")),
         Column("name", t("site.col_name")), Column("units", t("site.col_units"))],
        key="site_floors", sheet=t("site.tab_floors"), file_name="floors.xlsx",
    )


def _units(floors: list[site.FloorRow], rows: list[site.UnitRow]) -> None:
    if not floors:
        st.info(t("site.units_need_floor"))
        return
    floor_names = {f.id: f"{f.building} · {f.name}" for f in floors}
    by_id = {row.id: row for row in rows}
    UNITS.messages()
    UNITS.picker(t("site.unit_pick"), list(by_id),
                 lambda i: f"{by_id[i].number} · {by_id[i].building} · {by_id[i].floor}")
    with st.form("site_unit_form"):
        st.selectbox(t("site.unit_floor"), list(floor_names), format_func=floor_names.__getitem__,
                     key=UNITS.key("floor"), placeholder=t("site.choose"))
        st.text_input(t("site.unit_number"), key=UNITS.key("number"), placeholder="A101")
        st.text_input(t("site.unit_name"), key=UNITS.key("name"))
        st.text_input(t("site.unit_area"), key=UNITS.key("area_m2"), placeholder="45.5")
        UNITS.buttons()
    UNITS.delete_button()
    if not rows:
        st.info(t("site.units_empty"))
        return
    table(
        [{"building": r.building, "floor": r.floor, "number": r.number, "name": r.name,
          "area_m2": r.area_m2, "meters": r.meters} for r in rows],
        [Column("building", t("site.col_building")), Column("floor", t("site.col_floor")),
         Column("number", t("site.col_unit")), Column("name", t("site.col_name")),
         Column("area_m2", t("site.col_area"), "#,##0.00"),
         Column("meters", t("site.col_meters"))],
        key="site_units", sheet=t("site.tab_units"), file_name="units.xlsx",
    )


if __name__ == "__main__":
    render()
