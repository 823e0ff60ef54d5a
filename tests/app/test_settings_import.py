"""Bulk import: download the template, upload it filled in, see every problem or a preview, and
import all of it or nothing."""

from __future__ import annotations

import io

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from app.export import XLSX_MIME
from billing import importer, site
from billing.importer import BUILDINGS, FLOORS, GATEWAYS, METERS, UNITS
from schema.db import unit_of_work
from schema.models import Building, Gateway, Meter, Unit
from tests.app.support import Site


def on_page(site: Site, username: str = "admin") -> AppTest:
    return site.open_app(username).switch_page("screens/import_data.py").run()


def filled_template(meter_rows: list[list[object]]) -> bytes:
    """The template as an operator fills it: a building C with one floor, two shops, a gateway,
    and the meters given."""
    book = load_workbook(io.BytesIO(importer.template_xlsx(site.profiles())))
    book[BUILDINGS.sheet].append(["C", "Building C C栋"])
    book[FLOORS.sheet].append(["C", 1, "C1F"])
    book[UNITS.sheet].append(["C", 1, "C101", "Shop C101", 30])
    book[UNITS.sheet].append(["C", 1, "C102"])
    book[GATEWAYS.sheet].append(["GW-04", "10.0.0.4", 502, "tcp"])
    for row in meter_rows:
        book[METERS.sheet].append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def counts(site: Site) -> tuple[int, ...]:
    with unit_of_work(site.url) as session:
        return tuple(
            session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Building, Unit, Gateway, Meter)
        )


def test_before_a_file_the_page_offers_the_templates(site: Site) -> None:
    at = on_page(site)

    assert at.title[0].value == "Bulk import"
    assert [i.value for i in at.info] == [
        "Download the template, fill in the sheets you need and upload it here. Headers in "
        "Chinese, English or both are fine."
    ]
    assert [d.proto.label for d in at.get("download_button")] == [
        "Excel template (all sheets)", "CSV: Buildings", "CSV: Floors", "CSV: Units",
        "CSV: Gateways", "CSV: Meters",
    ]
    assert at.file_uploader(key="import_data_file").allowed_type == [".xlsx", ".csv"]


def test_a_valid_file_is_previewed_then_imported_once(site: Site) -> None:
    before = counts(site)
    at = on_page(site)
    data = filled_template([
        ["M10001", "acrel_dtsy1352", "GW-04", 1, "C101"],
        ["M10002", "acrel_ddsy1352", "GW-04", 2, "C102", 1, None, 1.15],
    ])

    at.file_uploader(key="import_data_file").set_value(("mall-c.xlsx", data, XLSX_MIME)).run()

    assert not at.error
    assert [s.value for s in at.success] == [
        "Every row of mall-c.xlsx is valid. Check what will be created, then import."
    ]
    assert {m.label: m.value for m in at.metric} == {
        "Buildings": "1", "Floors": "1", "Units": "2", "Gateways": "1", "Meters": "2",
    }
    preview = at.dataframe[-1].value  # a tab per kind; meters last
    assert list(preview["serial"]) == ["M10001", "M10002"]
    assert list(preview["row"]) == [2, 3]
    assert counts(site) == before  # nothing yet

    at.button(key="import_data_confirm").click().run()

    assert [s.value for s in at.success] == [
        "Imported from mall-c.xlsx: Buildings 1, Floors 1, Units 2, Gateways 1, Meters 2."
    ]
    assert counts(site) == (before[0] + 1, before[1] + 2, before[2] + 1, before[3] + 2)
    assert not at.main.button  # the same file is not offered for import again

    at.run()
    assert counts(site) == (before[0] + 1, before[1] + 2, before[2] + 1, before[3] + 2)


def test_an_invalid_file_lists_every_problem_and_imports_nothing(site: Site) -> None:
    before = counts(site)
    at = on_page(site)
    data = filled_template([
        ["M10001", "acrel_dtsy1352", "GW-04", 1, "C101"],
        ["M10002", "acrel_dtsy1352", "GW-04", 1, "C999"],
        ["M00001", "acrel_xyz", "GW-01", 300],
    ])

    at.file_uploader(key="import_data_file").set_value(("mall-c.xlsx", data, XLSX_MIME)).run()

    assert [e.value for e in at.error] == [
        "5 problem(s) found in mall-c.xlsx: nothing was imported. Correct them in the file and "
        "upload it again."
    ]
    problems = at.dataframe[0].value
    assert problems.to_dict("records") == [
        {"sheet": "电表 Meters", "row": 3, "column": "通讯地址 Bus address",
         "message": "Bus address 1 on gateway GW-04 is also on row 2"},
        {"sheet": "电表 Meters", "row": 3, "column": "户号 Unit",
         "message": "Unknown unit C999: it is neither in Voltpay nor on the Units sheet"},
        {"sheet": "电表 Meters", "row": 4, "column": "表号 Meter serial",
         "message": "Meter M00001 already exists"},
        {"sheet": "电表 Meters", "row": 4, "column": "型号 Profile",
         "message": "Profile must be one of acrel_ddsy1352, acrel_dtsd1352, acrel_dtsy1352, "
                    "chint_ddsu666, not 'acrel_xyz'"},
        {"sheet": "电表 Meters", "row": 4, "column": "通讯地址 Bus address",
         "message": "Bus address must be a whole number from 1 to 247, not '300'"},
    ]
    assert [d.proto.label for d in at.main.get("download_button")][-1] == (
        "Export the problems to Excel"
    )
    assert not at.main.button  # nothing to confirm
    assert not at.metric
    assert counts(site) == before


def test_a_file_that_is_no_workbook_is_refused_plainly(site: Site) -> None:
    at = on_page(site)

    at.file_uploader(key="import_data_file").set_value(("site.xlsx", b"PK not really",
                                                        XLSX_MIME)).run()

    assert [e.value for e in at.error] == [
        "This file cannot be read as an Excel workbook (.xlsx). Save it from Excel as “Excel "
        "Workbook (.xlsx)” or as CSV UTF-8, or start from the template."
    ]


def test_a_viewer_has_no_import_page(site: Site) -> None:
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        site.open_app("viewer").switch_page("screens/import_data.py")
