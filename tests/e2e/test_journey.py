"""An operator's day in a real browser against `voltpay run`: import a meter sheet (and see a bad
one refused row by row), open an account, sell, trip and close its meter through the batch control
grid with the simulator really switching the relay, and export the sales to Excel."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import func, select

from billing.money import format_money
from schema.db import unit_of_work
from schema.models import Building, Meter
from tests.e2e.support import (
    ADMIN_PASSWORD,
    System,
    choose,
    keep,
    log_in,
    metric,
    open_page,
    open_sale_page,
    sell,
    shot,
)
from voltpay.demo import PROFILE

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

# GW-01 is one of the demo's simulated gateways; its bus holds addresses 1-16.
IMPORTED = {"ME2E01": ("C101", 17), "ME2E02": ("C102", 18)}
RELAY_OPEN, RELAY_CLOSED = "○ open (tripped)", "● closed"


def meters_in_db(system: System) -> set[str]:
    with unit_of_work(system.database_url) as session:
        return set(session.scalars(select(Meter.serial)))


def building_count(system: System) -> int:
    with unit_of_work(system.database_url) as session:
        return session.scalar(select(func.count()).select_from(Building)) or 0


def start_bulk_import(page: Page, system: System) -> None:
    log_in(page, system, ADMIN_PASSWORD)
    expect(page.get_by_role("heading", name="Meters", exact=True)).to_be_visible()
    open_page(page, "Bulk import", "Bulk import")
    expect(page.get_by_text("Download the template, fill in the sheets you need")).to_be_visible()


def download(page: Page, button: str, name: str) -> Path:
    with page.expect_download() as started:
        page.get_by_role("button", name=button, exact=True).click()
    return keep(started.value, name)


def upload(page: Page, path: Path) -> None:
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(path)


def data_frame(scope: Page | Locator, column: str) -> Locator:
    """The data grid (st.dataframe) in `scope` that has a column headed `column`."""
    page = scope if isinstance(scope, Page) else scope.page  # `has` is relative: no scope
    header = page.locator("th", has_text=re.compile(rf"^{re.escape(column)}$"))
    return scope.get_by_test_id("stDataFrame").filter(has=header)


def grid_of(frame: Locator) -> Locator:
    """The accessible table a data grid keeps beside its canvas: what a screen reader reads,
    and only the rows and columns in view."""
    return frame.locator("table[role=grid]")


def test_a_bad_sheet_is_refused_row_by_row(system: System, page: Page, tmp_path: Path) -> None:
    before = meters_in_db(system)
    start_bulk_import(page, system)
    template = download(page, "CSV: Meters", "template-meters.csv")
    header = next(csv.reader(io.StringIO(template.read_text(encoding="utf-8-sig"))))
    assert header[:4] == ["表号 Meter serial", "型号 Profile", "网关名称 Gateway",
                          "通讯地址 Bus address"]
    sheet = tmp_path / "meters.csv"
    with sheet.open("w", encoding="utf-8-sig", newline="") as out:
        rows = csv.writer(out)
        rows.writerow(header)
        rows.writerow(["ME2E09", PROFILE, "GW-01", "20"])  # valid on its own
        rows.writerow(["M00001", PROFILE, "GW-01", "300"])  # a demo serial; beyond 247
        rows.writerow(["ME2E10", PROFILE, "GW-99", "5"])  # no such gateway
    upload(page, sheet)

    expect(page.get_by_text(
        "3 problem(s) found in meters.csv: nothing was imported. Correct them in the file and "
        "upload it again."
    )).to_be_visible()
    problems_frame = data_frame(page, "Problem")
    problems = grid_of(problems_frame)
    expect(problems.locator("th")).to_have_text(["Sheet", "Row", "Column", "Problem"])
    expect(problems.locator("tbody tr")).to_have_count(3)
    expected: list[list[str | re.Pattern[str]]] = [
        ["meters.csv", "3", "表号 Meter serial", "Meter M00001 already exists"],
        ["meters.csv", "3", "通讯地址 Bus address", re.compile(r"from 1 to 247, not '300'")],
        ["meters.csv", "4", "网关名称 Gateway", re.compile(r"^Unknown gateway GW-99")],
    ]
    for row, cells in zip(problems.locator("tbody tr").all(), expected, strict=True):
        expect(row.locator("td")).to_have_text(cells)
    expect(page.get_by_role("button", name=re.compile(r"^Import \d+ record"))).to_have_count(0)
    shot(page, "10-import-bad-sheet-refused", problems_frame)

    # Not even the valid row was imported.
    assert meters_in_db(system) == before


def test_import_open_sell_control_export(system: System, page: Page, tmp_path: Path) -> None:
    """A new building floor with two shops on the simulated gateway GW-01 is imported, then an
    account is opened, sold to, tripped and closed, and its sales exported.

    The account is opened on one of the demo's unopened meters, not on an imported one: the
    simulator stands in for the hardware and simulates the meters that existed when it started,
    so an imported meter's bus address has no device behind it until `voltpay run` restarts
    (the gateway answers "no response"), and a trip sent to it could never be confirmed. The
    imported meters are shown to be offered for the new account, next to the demo meter taken.
    """
    # Wide enough for every column of the control grid (its accessible table holds only the
    # columns in view).
    page.set_viewport_size({"width": 2400, "height": 1000})
    buildings = building_count(system)
    free_demo = next(row for row in system.status() if row.account is None)

    # 1. Log in; 2. import a meter sheet built from the downloaded template.
    start_bulk_import(page, system)
    shot(page, "20-bulk-import")
    template = download(page, "Excel template (all sheets)", "template.xlsx")
    book = load_workbook(template)
    assert book.sheetnames == ["说明 Read me", "楼栋 Buildings", "楼层 Floors", "户号 Units",
                               "网关 Gateways", "电表 Meters"]
    book["楼栋 Buildings"].append(["C", "Building C C栋"])
    book["楼层 Floors"].append(["C", 1, "C1F"])
    for serial, (unit, address) in IMPORTED.items():
        book["户号 Units"].append(["C", 1, unit, f"Shop {unit}"])
        book["电表 Meters"].append([serial, PROFILE, "GW-01", address, unit])
    sheet = tmp_path / "building-c.xlsx"
    book.save(sheet)
    upload(page, sheet)

    expect(page.get_by_text(
        "Every row of building-c.xlsx is valid. Check what will be created, then import."
    )).to_be_visible()
    for kind, count in (("Buildings", "1"), ("Floors", "1"), ("Units", "2"), ("Gateways", "0"),
                        ("Meters", "2")):
        expect(metric(page, kind)).to_have_text(count)
    page.get_by_role("tab", name="Meters").click()
    preview_frame = data_frame(page.get_by_role("tabpanel"), "表号 Meter serial")
    preview = grid_of(preview_frame)
    expect(preview.locator("tbody tr")).to_have_count(2)
    expect(preview.locator("tbody tr td:nth-child(2)")).to_have_text(list(IMPORTED))
    shot(page, "21-import-preview", preview_frame)
    page.get_by_role("button", name="Import 6 record(s)").click()
    expect(page.get_by_text(
        "Imported from building-c.xlsx: Buildings 1, Floors 1, Units 2, Meters 2."
    )).to_be_visible()
    shot(page, "22-imported")
    assert set(IMPORTED) <= meters_in_db(system)
    assert building_count(system) == buildings + 1
    open_page(page, "Overview", "Meters")
    expect(metric(page, "Meters")).to_have_text("50")

    # 3. Open an account: the imported meters are offered beside the demo's unopened ones.
    open_page(page, "Open account", "Open an account")
    suggested = page.get_by_label("Account number")
    expect(suggested).to_have_value(re.compile(r"^\d+$"))  # the next free number, suggested
    number = suggested.input_value()
    tenant = "Dumpling Bar 饺子馆"
    page.get_by_label("Tenant name").fill(tenant)
    page.get_by_label("Phone").fill("13900001234")
    meters = page.get_by_role("combobox", name="Meters")
    meters.click()
    meters.fill("ME2E")
    offered = page.get_by_role("listbox").get_by_role("option", name=re.compile("^ME2E"))
    expect(offered).to_have_text([f"{serial} · {unit}" for serial, (unit, _) in IMPORTED.items()])
    taken = f"{free_demo.meter} · {free_demo.unit}"
    choose(page, meters, free_demo.meter, taken)
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("stMultiSelect").get_by_text(taken, exact=True)).to_be_visible()
    page.get_by_label("Amount (CNY); leave blank for none").fill("3000.00")
    page.get_by_test_id("stRadio").get_by_text("Cash", exact=True).click()
    page.get_by_role("button", name="Open account").click()
    expect(
        page.get_by_text(f"Account {number} opened for {tenant} with 1 meter(s).")
    ).to_be_visible()
    expect(page.get_by_text("First sale: 3,000.00 CNY. Balance: 3,000.00 CNY.")).to_be_visible()
    shot(page, "23-account-opened")
    [opening] = system.sale_entries(number)
    assert opening.amount == Decimal("3000.0000")

    # 4. Sell, and see the new balance.
    open_sale_page(page)
    sell(page, number, "200.00", "Card")
    posted = page.get_by_text(re.compile(rf"^Sale posted: 200\.00 CNY to account {number}\."))
    expect(posted).to_be_visible()
    sale = system.sale_entries(number)[-1]
    assert sale.id != opening.id and sale.amount == Decimal("200.0000")
    assert sale.balance_after == system.entry_before(sale).balance_after + Decimal("200")
    expect(posted).to_have_text(
        f"Sale posted: 200.00 CNY to account {number}. "
        f"New balance: {format_money(sale.balance_after)} CNY."
    )
    assert sale.receipt_no
    expect(page.get_by_role("button", name=f"Receipt {sale.receipt_no} (PDF)")).to_be_visible()
    shot(page, "24-sale-posted")

    # 5. Trip and close the meter from the batch control grid.
    open_page(page, "Batch control", "Batch operations")
    search = page.get_by_role("textbox", name="Search")
    search.fill(free_demo.meter)
    search.press("Enter")
    control_grid = data_frame(page, "Relay")
    grid = grid_of(control_grid)
    expect(grid).to_have_attribute("aria-rowcount", "2")  # a header row and the meter
    expect(grid.locator("tbody td").nth(4)).to_have_text(free_demo.meter)
    expect(relay_cell(control_grid)).to_have_text(RELAY_CLOSED)
    # Tick the row's checkbox: the canvas' first column, the first row under the header.
    control_grid.click(position={"x": 17, "y": 52})
    expect(page.get_by_text(f"1 meter(s): {free_demo.meter}", exact=True)).to_be_visible()
    shot(page, "25-control-row-selected", control_grid)

    for kind, done, relay in (("Trip", 1, RELAY_OPEN), ("Close", 2, RELAY_CLOSED)):
        choose(page, page.get_by_role("combobox", name="Operation"), kind,
               re.compile(rf"^{kind} — "))
        page.get_by_label("Reason (kept in the operation log)").fill(f"e2e {kind.lower()}")
        page.get_by_role("button", name="Send", exact=True).click()
        expect(page.get_by_text("1 command(s) queued. Follow them below.")).to_be_visible()
        # The live list: queued → sent → confirmed once the collector read the relay back.
        expect(page.get_by_text(f"confirmed · {done}", exact=True)).to_be_visible()
        commands_frame = data_frame(page, "Attempts")
        commands = grid_of(commands_frame)
        expect(commands.locator("tbody tr").first.locator("td").nth(3)).to_have_text(kind)
        shot(page, f"26-control-{kind.lower()}-confirmed", commands_frame)
        page.get_by_role("button", name="Refresh").click()
        expect(relay_cell(control_grid)).to_have_text(relay)
        expect(page.get_by_text(f"1 meter(s): {free_demo.meter}", exact=True)).to_be_visible()
        shot(page, f"27-control-{kind.lower()}-relay", control_grid)
        status = next(r for r in system.status() if r.meter_id == free_demo.meter_id)
        assert status.relay == ("open" if kind == "Trip" else "closed")
    sent = [c for c in system.commands(free_demo.meter_id) if c.reason.startswith("e2e ")]
    assert [(c.kind, c.state) for c in sent] == [("trip", "confirmed"), ("close", "confirmed")]

    # The grid as shown, exported: the meter with its new account, supply back on.
    with page.expect_download() as started:
        page.locator(".st-key-control_export").get_by_role("button", name="Export to Excel").click()
    grid_rows = list(load_workbook(keep(started.value, "control-grid.xlsx")).active.iter_rows(
        values_only=True
    ))
    assert grid_rows[0][:9] == ("State", "Unit", "Building", "Floor", "Meter", "Gateway",
                                "Account", "Tenant", "Balance (CNY)"), grid_rows[0]
    assert grid_rows[0][11] == "Relay", grid_rows[0]
    assert len(grid_rows) == 2, grid_rows
    shown = grid_rows[1]
    assert (shown[0], shown[1], shown[4], shown[6], shown[7], shown[11]) == (
        "Opened", free_demo.unit, free_demo.meter, number, tenant, RELAY_CLOSED
    ), shown

    # 6. Export the account's sales and read the workbook.
    open_page(page, "Sales records", "Sales records")
    page.get_by_label("Account or tenant").fill(number)
    page.get_by_label("Account or tenant").press("Enter")
    expect(page.get_by_role("tab", name="Sales (2)")).to_be_visible()
    sales_tab = page.get_by_role("tabpanel")
    expect(grid_of(data_frame(sales_tab, "Receipt")).locator("tbody tr")).to_have_count(2)
    shot(page, "28-sales-records", sales_tab)
    with page.expect_download() as started:
        page.locator(".st-key-sales_query_sale_xlsx").get_by_role(
            "button", name="Export to Excel"
        ).click()
    exported = keep(started.value, "sales-records.xlsx")
    assert started.value.suggested_filename == "sales.xlsx"
    rows = list(load_workbook(exported).active.iter_rows(values_only=True))
    assert rows[0] == ("Time (Asia/Shanghai)", "Receipt", "Account", "Tenant", "Amount (CNY)",
                       "Payment method", "Operator", "Reversed by"), rows[0]
    by_receipt = {row[1]: row for row in rows[1:]}
    assert set(by_receipt) == {opening.receipt_no, sale.receipt_no}, rows
    _, _, account, who, amount, method, operator, reversed_by = by_receipt[sale.receipt_no]
    assert (account, who, Decimal(str(amount)), method, operator, reversed_by) == (
        number, tenant, Decimal("200"), "Card", "Administrator", None
    ), by_receipt[sale.receipt_no]


def relay_cell(control_grid: Locator) -> Locator:
    """The Relay cell of the grid's only row."""
    grid = grid_of(control_grid)
    relay = grid.locator("th", has_text=re.compile(r"^Relay$"))
    expect(relay).to_have_count(1)
    column = relay.get_attribute("aria-colindex")
    return grid.locator(f'tbody td[aria-colindex="{column}"]')
