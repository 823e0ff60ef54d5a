"""Excel exports open in Excel with real headers, number formats and widths."""

from __future__ import annotations

import io
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from openpyxl import load_workbook

from app.export import MONEY, Column, xlsx_bytes

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_an_export_has_bold_headers_number_formats_and_fitted_widths() -> None:
    rows = [
        {"unit": "A101", "tenant": "福满面馆 Lucky Noodle House", "balance": Decimal("1234.5"),
         "at": datetime(2026, 11, 25, 9, 30, tzinfo=SHANGHAI)},
        {"unit": "A102", "tenant": None, "balance": Decimal("-3.25"), "at": None},
    ]
    data = xlsx_bytes(rows, [Column("unit", "户号 Unit"), Column("tenant", "Tenant"),
                             Column("balance", "Balance (CNY)", MONEY), Column("at", "Read at")],
                      sheet="Meters")
    ws = load_workbook(io.BytesIO(data))["Meters"]
    assert [c.value for c in ws[1]] == ["户号 Unit", "Tenant", "Balance (CNY)", "Read at"]
    assert all(c.font.bold for c in ws[1])
    assert ws.freeze_panes == "A2"
    assert ws["C2"].value == 1234.5 and ws["C2"].number_format == MONEY
    assert ws["C3"].value == -3.25
    assert ws["D2"].value == datetime(2026, 11, 25, 9, 30, tzinfo=SHANGHAI).replace(tzinfo=None)
    assert ws["D2"].number_format == "yyyy-mm-dd hh:mm:ss"
    assert ws["B3"].value is None
    assert ws.column_dimensions["B"].width > len("福满面馆 Lucky Noodle House")
