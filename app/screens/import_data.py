"""Bulk import (批量导入): buildings, floors, units, gateways and meters from a filled-in template.

The uploaded file is checked as a whole first: either every problem is listed (sheet, row, column,
message — exportable to Excel) and nothing is imported, or a preview shows everything that will
be created and the operator confirms. The confirmation checks the file again against the
database and imports it in one transaction.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from app import auth
from app.export import XLSX_MIME, Column, xlsx_bytes
from app.i18n import STRINGS, register, t
from app.nav import Screen
from app.screens.site import allowed, table
from billing import importer, site
from billing.errors import BillingError
from billing.importer import ImportPlan, ImportRejected
from schema.db import unit_of_work

SCREEN = Screen(module="import_data", url_path="bulk-import", title_key="import_data.nav",
                permission="configure", icon=":material/upload_file:",
                section="section.settings", order=50)
FILE = "import_data_file"
PLAN = "import_data_plan"  # the checked file: {"file_id", "filename", "counts", "errors", "rows"}
DONE = "import_data_done"  # the imported file: {"file_id", "counts"}

# Streamlit executes this file afresh on every run of the page: register the strings once.
if "import_data.nav" not in STRINGS["en"]:
    register({
        "en": {
            "import_data.nav": "Bulk import",
            "import_data.title": "Bulk import",
            "import_data.caption": "Buildings, floors, units, gateways and meters from an Excel "
            "workbook or CSV files. Every row is checked first; nothing is imported unless "
            "every row is valid.",
            "import_data.templates": "1. Download a template",
            "import_data.template_xlsx": "Excel template (all sheets)",
            "import_data.template_csv": "CSV: {kind}",
            "import_data.upload": "2. Upload the filled-in file (.xlsx or .csv)",
            "import_data.waiting": "Download the template, fill in the sheets you need and upload "
            "it here. Headers in Chinese, English or both are fine.",
            "import_data.has_errors": "{count} problem(s) found in {file}: nothing was "
            "imported. Correct them in the file and upload it again.",
            "import_data.errors_export": "Export the problems to Excel",
            "import_data.ready": "Every row of {file} is valid. Check what will be created, then "
            "import.",
            "import_data.confirm": "Import {total} record(s)",
            "import_data.done": "Imported from {file}: {summary}.",
            "import_data.again": "To import another file, upload it above.",
            "import_data.kind.buildings": "Buildings",
            "import_data.kind.floors": "Floors",
            "import_data.kind.units": "Units",
            "import_data.kind.gateways": "Gateways",
            "import_data.kind.meters": "Meters",
            "import_data.col_sheet": "Sheet",
            "import_data.col_row": "Row",
            "import_data.col_column": "Column",
            "import_data.col_message": "Problem",
        },
        "zh": {
            "import_data.nav": "批量导入",
            "import_data.title": "批量导入",
            "import_data.caption": "从 Excel 工作簿或 CSV 文件导入楼栋、楼层、户号、"
            "通讯管理机和电表。先检查每一行；任一行有误则全部不导入。",
            "import_data.templates": "1. 下载模板",
            "import_data.template_xlsx": "Excel 模板（全部工作表）",
            "import_data.template_csv": "CSV：{kind}",
            "import_data.upload": "2. 上传填写好的文件（.xlsx 或 .csv）",
            "import_data.waiting": "下载模板，填写需要的工作表后在此上传。"
            "表头用中文、英文或中英文均可。",
            "import_data.has_errors": "{file} 中发现 {count} 个问题，未导入任何数据。"
            "请在文件中改正后重新上传。",
            "import_data.errors_export": "将问题导出到 Excel",
            "import_data.ready": "{file} 的每一行都有效。请确认将要创建的内容，然后导入。",
            "import_data.confirm": "导入 {total} 条记录",
            "import_data.done": "已从 {file} 导入：{summary}。",
            "import_data.again": "如需导入其他文件，请在上方上传。",
            "import_data.kind.buildings": "楼栋",
            "import_data.kind.floors": "楼层",
            "import_data.kind.units": "户号",
            "import_data.kind.gateways": "通讯管理机",
            "import_data.kind.meters": "电表",
            "import_data.col_sheet": "工作表",
            "import_data.col_row": "行",
            "import_data.col_column": "列",
            "import_data.col_message": "问题",
        },
    })


def _plan_state(file_id: str, plan: ImportPlan) -> dict[str, Any]:
    """The plan as plain data for the session (Streamlit re-executes this file every run)."""
    return {
        "file_id": file_id,
        "filename": plan.filename,
        "counts": plan.counts(),
        "errors": [
            {"sheet": e.sheet, "row": e.row, "column": e.column, "message": e.message}
            for e in plan.errors
        ],
        "rows": {
            kind: [{"row": r.row, **r.values} for r in rows] for kind, rows in plan.rows.items()
        },
    }


def _check(file_id: str, filename: str, data: bytes) -> dict[str, Any]:
    """The file's plan, checked once per upload."""
    cached: dict[str, Any] | None = st.session_state.get(PLAN)
    if cached is None or cached["file_id"] != file_id:
        with unit_of_work(auth.database_url()) as session:
            plan = importer.check(session, data, filename,
                                  operator=auth.current_operator(session))
        cached = _plan_state(file_id, plan)
        st.session_state[PLAN] = cached
    return cached


def _summary(counts: dict[str, int]) -> str:
    return ", ".join(
        f"{t(f'import_data.kind.{kind}')} {count}" for kind, count in counts.items() if count
    )


def _on_confirm() -> None:
    upload = st.session_state.get(FILE)
    if upload is None:
        return
    try:
        with unit_of_work(auth.database_url()) as session:
            result = importer.import_file(
                session, upload.getvalue(), upload.name,
                operator=auth.current_operator(session), now=auth.utcnow(),
            )
    except ImportRejected as exc:  # the database changed since the check
        st.session_state[PLAN] = _plan_state(upload.file_id, exc.plan)
        return
    except BillingError as exc:
        st.session_state[f"{PLAN}_error"] = str(exc)
        return
    st.session_state[DONE] = {"file_id": upload.file_id, "filename": result.filename,
                              "counts": result.counts}
    st.session_state.pop(PLAN, None)


def render() -> None:
    st.title(t("import_data.title"))
    st.caption(t("import_data.caption"))
    if not allowed():
        return
    _templates()
    st.subheader(t("import_data.upload"))
    upload = st.file_uploader(t("import_data.upload"), type=["xlsx", "csv"], key=FILE,
                              label_visibility="collapsed")
    if upload is None:
        st.info(t("import_data.waiting"))
        return
    done = st.session_state.get(DONE)
    if done is not None and done["file_id"] == upload.file_id:
        st.success(t("import_data.done", file=done["filename"], summary=_summary(done["counts"])))
        st.info(t("import_data.again"))
        return
    failure = st.session_state.pop(f"{PLAN}_error", None)
    if failure:
        st.error(failure)
    try:
        plan = _check(upload.file_id, upload.name, upload.getvalue())
    except BillingError as exc:
        st.error(str(exc))
        return
    if plan["errors"]:
        _errors(plan)
    else:
        _preview(plan)


def _templates() -> None:
    st.subheader(t("import_data.templates"))
    with unit_of_work(auth.database_url()) as session:
        tariffs = [name for _, name in site.tariffs(session)]
    st.download_button(
        t("import_data.template_xlsx"),
        data=lambda: importer.template_xlsx(site.profiles(), tariffs),
        file_name="voltpay-import-template.xlsx", mime=XLSX_MIME,
        key="import_data_template_xlsx", icon=":material/download:", type="primary",
    )
    for column, kind in zip(st.columns(len(importer.KINDS)), importer.KINDS, strict=True):
        column.download_button(
            t("import_data.template_csv", kind=t(f"import_data.kind.{kind.key}")),
            data=importer.template_csv(kind.key), file_name=importer.csv_file_name(kind.key),
            mime="text/csv", key=f"import_data_template_{kind.key}",
        )


def _errors(plan: dict[str, Any]) -> None:
    errors = plan["errors"]
    sheet = t("import_data.col_message")
    st.error(t("import_data.has_errors", count=len(errors), file=plan["filename"]))
    columns = [
        Column("sheet", t("import_data.col_sheet")), Column("row", t("import_data.col_row")),
        Column("column", t("import_data.col_column")),
        Column("message", t("import_data.col_message"), width=90),
    ]
    st.dataframe(errors, key="import_data_errors", hide_index=True,
                 column_order=[c.key for c in columns],
                 column_config={c.key: c.header for c in columns})
    st.download_button(
        t("import_data.errors_export"),
        data=lambda: xlsx_bytes(errors, columns, sheet=sheet),
        file_name=f"{plan['filename'].rsplit('.', 1)[0]}-problems.xlsx", mime=XLSX_MIME,
        key="import_data_errors_xlsx", icon=":material/download:",
    )


def _preview(plan: dict[str, Any]) -> None:
    st.success(t("import_data.ready", file=plan["filename"]))
    counts: dict[str, int] = plan["counts"]
    for column, kind in zip(st.columns(len(importer.KINDS)), importer.KINDS, strict=True):
        column.metric(t(f"import_data.kind.{kind.key}"), counts[kind.key], border=True)
    kinds = [kind for kind in importer.KINDS if counts[kind.key]]
    for tab, kind in zip(st.tabs([t(f"import_data.kind.{k.key}") for k in kinds]), kinds,
                         strict=True):
        with tab:
            table(
                plan["rows"][kind.key],
                [Column("row", t("import_data.col_row"))]
                + [Column(c.key, c.header) for c in kind.columns],
                key=f"import_data_preview_{kind.key}", sheet=kind.sheet,
                file_name=f"import-preview-{kind.key}.xlsx",
            )
    st.button(
        t("import_data.confirm", total=sum(counts.values())), type="primary",
        key="import_data_confirm", on_click=_on_confirm, icon=":material/upload:",
    )


if __name__ == "__main__":
    render()
