"""Receipts: a one-page PDF whose text (Chinese included) poppler reads back, its font embedded."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from fpdf import FPDF

from billing import receipts
from billing.receipts import (
    FontCandidate,
    ReceiptData,
    ReceiptFontMissing,
    find_cjk_font,
    format_amount,
    format_local_time,
    render_receipt,
    wrap,
)

CHINA = timezone(timedelta(hours=8))
TENANT = "福满面馆 Lucky Noodle House"

SALE = ReceiptData(
    site_name="万达广场 Wanda Plaza",
    receipt_no="20261125-0007",
    kind="sale",
    account_number="A-000123",
    tenant_name=TENANT,
    units=("B1-023", "B1-024"),
    meters=("DTSY1352-000188",),
    amount=Decimal("1234.50"),
    balance_after=Decimal("2040.75"),
    currency="CNY",
    payment_method="cash",
    operator="王小明",
    at_local=datetime(2026, 11, 25, 14, 3, 7, tzinfo=CHINA),
)


def poppler(tool: str, *args: str) -> str:
    """The output of a poppler-utils command, which `make test` installs."""
    if shutil.which(tool) is None:
        pytest.fail(
            f"{tool} is missing: run `make test`, which installs the Debian poppler-utils "
            "package (scripts/system-deps.sh).",
            pytrace=False,
        )
    done = subprocess.run([tool, *args], capture_output=True, text=True, check=True, timeout=60)
    return done.stdout


def write(pdf: bytes, tmp_path: Path, name: str = "receipt.pdf") -> str:
    path = tmp_path / name
    path.write_bytes(pdf)
    return str(path)


def text_of(pdf: bytes, tmp_path: Path) -> str:
    """The PDF's text as pdftotext reads it, runs of whitespace made one space."""
    return " ".join(poppler("pdftotext", "-enc", "UTF-8", write(pdf, tmp_path), "-").split())


def pages_of(pdf: bytes, tmp_path: Path) -> int:
    info = poppler("pdfinfo", write(pdf, tmp_path))
    match = re.search(r"^Pages:\s+(\d+)$", info, re.MULTILINE)
    assert match, info
    return int(match.group(1))


def page_size_of(pdf: bytes, tmp_path: Path) -> tuple[float, float]:
    """Width and height in points."""
    info = poppler("pdfinfo", write(pdf, tmp_path))
    match = re.search(r"^Page size:\s+([\d.]+) x ([\d.]+) pts", info, re.MULTILINE)
    assert match, info
    return float(match.group(1)), float(match.group(2))


@pytest.fixture(scope="module")
def sale_pdf() -> bytes:
    return render_receipt(SALE)


def test_sale_receipt_shows_the_chinese_tenant_and_the_money(
    sale_pdf: bytes, tmp_path: Path
) -> None:
    assert sale_pdf.startswith(b"%PDF-")
    text = text_of(sale_pdf, tmp_path)
    for shown in (
        "万达广场 Wanda Plaza",
        "售电收据",
        "SALE RECEIPT",
        TENANT,
        "20261125-0007",
        "2026-11-25 14:03:07 UTC+08:00",
        "A-000123",
        "B1-023, B1-024",
        "DTSY1352-000188",
        "现金 Cash",
        "王小明",
        "售电金额",
        "CNY 1,234.50",
        "余额",
        "CNY 2,040.75",
        "客户签名",
    ):
        assert shown in text, shown
    assert "退电" not in text
    assert "冲正" not in text


def test_sale_receipt_is_one_page_with_its_cjk_font_embedded(
    sale_pdf: bytes, tmp_path: Path
) -> None:
    assert pages_of(sale_pdf, tmp_path) == 1
    width, _ = page_size_of(sale_pdf, tmp_path)
    assert width == pytest.approx(80 / 25.4 * 72, abs=0.1)  # an 80 mm roll
    rows = poppler("pdffonts", write(sale_pdf, tmp_path)).splitlines()[2:]
    assert rows, "the receipt uses no font"
    for row in rows:
        # name type... encoding emb sub uni object generation: emb/sub/uni sit 5th to 3rd last
        emb, sub, uni = row.split()[-5:-2]
        assert (emb, sub, uni) == ("yes", "yes", "yes"), row
    expected = "NotoSansCJKSC" if find_cjk_font().package == "fonts-noto-cjk" else ""
    assert any(expected in row.split()[0] for row in rows), rows


def test_refund_labels_itself_and_shows_its_reason(tmp_path: Path) -> None:
    refund = replace(SALE, kind="refund", payment_method="transfer", note="退租结清 lease ended")
    text = text_of(render_receipt(refund), tmp_path)
    for shown in (
        "退电收据",
        "REFUND RECEIPT",
        "退款金额",
        "退款方式",
        "转账",
        "退租结清 lease ended",
    ):
        assert shown in text, shown
    assert "售电收据" not in text
    assert "CNY 1,234.50" in text


def test_reversal_labels_itself_and_names_the_reversed_receipt(tmp_path: Path) -> None:
    reversal = replace(
        SALE, kind="reversal", payment_method=None, note="Reverses receipt 20261125-0006"
    )
    text = text_of(render_receipt(reversal), tmp_path)
    for shown in ("冲正收据", "REVERSAL RECEIPT", "冲正金额", "Reverses receipt 20261125-0006"):
        assert shown in text, shown
    assert "售电收据" not in text


def test_english_receipt_has_english_labels(tmp_path: Path) -> None:
    english = replace(SALE, kind="refund", language="en", payment_method="card")
    text = text_of(render_receipt(english), tmp_path)
    for shown in (
        "Refund Receipt",
        "Receipt No.",
        "Date/time",
        "Tenant",
        "Units",
        "Meters",
        "Refund method Card",
        "Amount refunded",
        "Balance after",
        "Customer signature",
        TENANT,  # the tenant's own name stays as it is
        "CNY 1,234.50",
    ):
        assert shown in text, shown
    for chinese_label in ("收据号", "退电收据", "余额", "客户签名", "银行卡"):
        assert chinese_label not in text, chinese_label


def test_a_long_receipt_grows_the_roll_and_stays_one_page(tmp_path: Path) -> None:
    meters = tuple(f"DTSY1352-{n:06d}" for n in range(40))
    long = replace(
        SALE,
        units=tuple(f"L3-{n:03d}" for n in range(40)),
        meters=meters,
        note="多铺合并结算，" * 20,
        amount=Decimal("1234567.80"),
    )
    pdf = render_receipt(long)
    assert pages_of(pdf, tmp_path) == 1
    text = text_of(pdf, tmp_path)
    assert all(meter in text for meter in meters)
    assert "CNY 1,234,567.80" in text
    assert page_size_of(pdf, tmp_path)[1] > page_size_of(render_receipt(SALE), tmp_path)[1]


def test_a_reprint_is_the_same_pdf(sale_pdf: bytes) -> None:
    assert render_receipt(SALE) == sale_pdf


def test_money_and_time_formatting() -> None:
    assert format_amount(Decimal("1234.5"), "CNY") == "CNY 1,234.50"
    assert format_amount(Decimal("0"), "CNY") == "CNY 0.00"
    assert format_amount(Decimal("-1234567.89"), "CNY") == "CNY -1,234,567.89"
    assert format_local_time(SALE.at_local) == "2026-11-25 14:03:07 UTC+08:00"
    newfoundland = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(-timedelta(hours=3, minutes=30)))
    assert format_local_time(newfoundland) == "2026-01-02 03:04:05 UTC-03:30"


def test_bad_receipt_data_is_refused() -> None:
    with pytest.raises(TypeError, match="Decimal"):
        replace(SALE, amount=1234.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone-aware"):
        replace(SALE, at_local=datetime(2026, 11, 25, 14, 3))  # noqa: DTZ001
    with pytest.raises(ValueError, match="kind"):
        replace(SALE, kind="void")
    with pytest.raises(ValueError, match="language"):
        replace(SALE, language="fr")
    with pytest.raises(TypeError, match="sequence"):
        replace(SALE, units="B1-023")


def test_a_missing_font_names_the_package_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    nowhere = FontCandidate("/nonexistent/NotoSansCJK-Regular.ttc", "fonts-noto-cjk")
    with pytest.raises(ReceiptFontMissing, match="apt-get install fonts-noto-cjk"):
        find_cjk_font([nowhere])
    monkeypatch.setattr(receipts, "FONT_CANDIDATES", (nowhere,))
    with pytest.raises(ReceiptFontMissing, match="fonts-noto-cjk"):
        render_receipt(SALE)


def test_noto_cjk_uses_its_simplified_chinese_face() -> None:
    font = find_cjk_font()
    if font.package == "fonts-noto-cjk":
        assert font.regular.name == "NotoSansCJK-Regular.ttc"
        assert font.bold.name == "NotoSansCJK-Bold.ttc"
        assert font.regular_index == 2  # JP, KR, SC, TC, HK: Debian's order
        assert font.bold_index == 2


def test_wrap_breaks_between_chinese_characters_and_after_words() -> None:
    pdf = FPDF(unit="mm")
    font = find_cjk_font()
    pdf.add_font("cjk", "", str(font.regular), collection_font_number=font.regular_index)
    pdf.set_font("cjk", size=9)
    text = "福满面馆（万达广场店）Lucky Noodle House Wanda Plaza Branch"
    lines = wrap(pdf, text, 25)
    assert len(lines) > 1
    assert all(pdf.get_string_width(line) <= 25 for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    assert wrap(pdf, "ABCDEFGHIJKLMNOPQRSTUVWXYZ" * 3, 20)[0] != "ABCDEFGHIJKLMNOPQRSTUVWXYZ" * 3
    assert wrap(pdf, "line one\nline two", 60) == ["line one", "line two"]
    assert wrap(pdf, "", 60) == [""]
