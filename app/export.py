"""Excel exports for every table: real headers, number formats and column widths."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

MONEY = "#,##0.00"
ENERGY = "#,##0.00"
INTEGER = "#,##0"
DATETIME = "yyyy-mm-dd hh:mm:ss"
DATE = "yyyy-mm-dd"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class Column:
    key: str  # the row's key
    header: str  # as the user reads it (already translated)
    number_format: str | None = None  # e.g. MONEY; dates and datetimes get theirs by default
    width: float | None = None  # characters; None: fitted to the contents


def _cell(value: object) -> object:
    if isinstance(value, Decimal):
        return float(value)  # an Excel number is a double; the ledger keeps the exact Decimal
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)  # Excel has no time zones: pass local times in
    return value


def xlsx_bytes(
    rows: Iterable[Mapping[str, object]], columns: Sequence[Column], *, sheet: str = "Sheet1"
) -> bytes:
    """One worksheet: a bold, frozen header row, then the rows; datetimes must be local."""
    book = Workbook()
    ws = book.active
    assert ws is not None
    ws.title = sheet[:31]
    ws.append([c.header for c in columns])
    header_fill = PatternFill("solid", fgColor="DDE7F0")
    for cell in ws[1]:
        cell.font = Font(bold=True)
        cell.fill = header_fill
        cell.alignment = Alignment(vertical="center")
    widths = [len(c.header) for c in columns]
    for row in rows:
        values = [row.get(c.key) for c in columns]
        ws.append([_cell(v) for v in values])
        for i, (column, value) in enumerate(zip(columns, values, strict=True)):
            cell = ws.cell(row=ws.max_row, column=i + 1)
            if column.number_format:
                cell.number_format = column.number_format
            elif isinstance(value, datetime):
                cell.number_format = DATETIME
            elif isinstance(value, date):
                cell.number_format = DATE
            shown = 19 if isinstance(value, datetime) else len(str(value or ""))
            widths[i] = max(widths[i], shown)
    for i, column in enumerate(columns):
        # CJK characters are about two Latin characters wide.
        ws.column_dimensions[get_column_letter(i + 1)].width = (
            column.width or min(max(widths[i] * 1.2 + 2, 8), 60)
        )
    ws.freeze_panes = "A2"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
