"""Receipts for sales, refunds and reversals: a one-page PDF on an 80 mm roll-like page.

The page is 80 mm wide and exactly as tall as its content, so it prints on a thermal receipt
printer as well as on an office printer. Tenant names are often Chinese, so every text is set in
a CJK font from a Debian package (fonts-noto-cjk, installed by scripts/system-deps.sh), embedded
as a subset so the PDF is self-contained. Money is Decimal throughout; it is never a float.

Text is wrapped here rather than by fpdf2, so that the whole receipt is laid out (and its height
known) before the page exists: the page is then added at that height and the layout drawn on it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from fontTools.ttLib import TTCollection
from fpdf import FPDF
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from billing.errors import NotFound
from billing.money import format_money
from schema.models import Account, AccountMeter, LedgerEntry, Meter, Operator, Unit

KINDS = ("sale", "refund", "reversal")
LANGUAGES = ("zh", "en")

PAGE_WIDTH_MM = 80.0
MARGIN_MM = 5.0
CONTENT_WIDTH_MM = PAGE_WIDTH_MM - 2 * MARGIN_MM
LABEL_WIDTH_MM = 22.0
VALUE_WIDTH_MM = CONTENT_WIDTH_MM - LABEL_WIDTH_MM
PT_MM = 25.4 / 72  # one typographic point in millimetres
LINE_SPACING = 1.3  # line height as a multiple of the font size
FAMILY = "receipt-cjk"


class ReceiptFontMissing(RuntimeError):
    """No CJK font is installed where the receipts look for one."""


@dataclass(frozen=True)
class FontCandidate:
    """A CJK font file a Debian package installs, tried in the order of FONT_CANDIDATES.

    Each must also cover Latin text (amounts, English labels): Droid Sans Fallback does not.
    """

    regular: str
    package: str
    bold: str | None = None
    face: str | None = None  # family name of the face to use in a .ttc collection


FONT_CANDIDATES: tuple[FontCandidate, ...] = (
    FontCandidate(
        "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
        "fonts-noto-cjk",
        bold="/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
        face="Noto Sans CJK SC",
    ),
    FontCandidate("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", "fonts-wqy-microhei"),
)


@dataclass(frozen=True)
class CjkFont:
    """The font files a receipt embeds; index is the face within a .ttc (0 for a .ttf)."""

    regular: Path
    regular_index: int
    bold: Path
    bold_index: int
    package: str


def find_cjk_font(candidates: Sequence[FontCandidate] | None = None) -> CjkFont:
    """The first installed candidate; ReceiptFontMissing, naming the package, when none is."""
    candidates = FONT_CANDIDATES if candidates is None else candidates
    for candidate in candidates:
        regular = Path(candidate.regular)
        if not regular.is_file():
            continue
        bold = Path(candidate.bold) if candidate.bold else regular
        if not bold.is_file():
            bold = regular  # bold then prints as regular, which is still legible
        return CjkFont(
            regular=regular,
            regular_index=_face_index(str(regular), candidate.face),
            bold=bold,
            bold_index=_face_index(str(bold), candidate.face),
            package=candidate.package,
        )
    looked = ", ".join(candidate.regular for candidate in candidates)
    package = candidates[0].package if candidates else "fonts-noto-cjk"
    raise ReceiptFontMissing(
        f"No CJK font for receipts: none of {looked} exists. Install the Debian package "
        f"{package} (apt-get install {package}, or `make system-deps`)."
    )


@lru_cache(maxsize=16)
def _face_index(path: str, face: str | None) -> int:
    """The index of the face named `face` in a .ttc collection; 0 for a single font."""
    if face is None or not path.lower().endswith((".ttc", ".otc")):
        return 0
    collection = TTCollection(path, lazy=True)
    try:
        for index, font in enumerate(collection.fonts):
            if font["name"].getDebugName(1) == face:
                return index
    finally:
        collection.close()
    return 0


@dataclass(frozen=True)
class ReceiptData:
    site_name: str
    receipt_no: str  # e.g. "20261125-0007"
    kind: str  # "sale" | "refund" | "reversal"
    account_number: str
    tenant_name: str  # may be Chinese, e.g. "福满面馆 Lucky Noodle House"
    units: Sequence[str]  # unit numbers (户号)
    meters: Sequence[str]  # meter serials
    amount: Decimal  # 2 places
    balance_after: Decimal
    currency: str  # "CNY"
    payment_method: str | None  # cash/card/transfer/online
    operator: str
    at_local: datetime  # aware, already in the site time zone
    note: str = ""  # e.g. refund reason / reversed receipt number
    language: str = "zh"  # "zh": Simplified Chinese labels with English; "en": English only

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Receipt kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.language not in LANGUAGES:
            raise ValueError(f"Receipt language must be zh or en, not {self.language!r}")
        for name in ("amount", "balance_after"):
            if not isinstance(getattr(self, name), Decimal):
                raise TypeError(f"Receipt {name} must be a Decimal")
        if self.at_local.utcoffset() is None:
            raise ValueError("Receipt at_local must be timezone-aware (the site's local time)")
        for name in ("units", "meters"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise TypeError(f"Receipt {name} must be a sequence of strings, not one string")
            object.__setattr__(self, name, tuple(value))


# Labels: (Simplified Chinese, English). In "zh" the English stands small under the Chinese.
TITLES = {
    "sale": ("售电收据", "Sale Receipt"),
    "refund": ("退电收据", "Refund Receipt"),
    "reversal": ("冲正收据", "Reversal Receipt"),
}
AMOUNT_LABELS = {
    "sale": ("售电金额", "Amount paid"),
    "refund": ("退款金额", "Amount refunded"),
    "reversal": ("冲正金额", "Amount reversed"),
}
PAYMENT_LABELS = {
    "sale": ("付款方式", "Payment method"),
    "refund": ("退款方式", "Refund method"),
    "reversal": ("付款方式", "Payment method"),
}
PAYMENT_METHODS = {
    "cash": ("现金", "Cash"),
    "card": ("银行卡", "Card"),
    "transfer": ("转账", "Bank transfer"),
    "online": ("线上支付", "Online"),
}
LABELS = {
    "receipt_no": ("收据号", "Receipt No."),
    "at": ("时间", "Date/time"),
    "account": ("账号", "Account"),
    "tenant": ("商户", "Tenant"),
    "units": ("户号", "Units"),
    "meters": ("电表", "Meters"),
    "operator": ("操作员", "Operator"),
    "balance": ("余额", "Balance after"),
    "note": ("备注", "Note"),
    "signature": ("客户签名", "Customer signature"),
    "footer": ("请妥善保管本收据", "Please keep this receipt"),
}
NONE_SHOWN = "-"


def render_receipt(data: ReceiptData) -> bytes:
    """The receipt as a one-page PDF with its CJK font embedded (subset)."""
    font = find_cjk_font()
    pdf = FPDF(unit="mm", format=(PAGE_WIDTH_MM, PAGE_WIDTH_MM))
    pdf.add_font(FAMILY, "", str(font.regular), collection_font_number=font.regular_index)
    pdf.add_font(FAMILY, "B", str(font.bold), collection_font_number=font.bold_index)
    pdf.set_auto_page_break(False)
    pdf.set_margins(MARGIN_MM, MARGIN_MM, MARGIN_MM)
    zh_title, en_title = TITLES[data.kind]
    title = f"{zh_title} {en_title}" if data.language == "zh" else en_title
    pdf.set_title(f"{title} {data.receipt_no}")
    pdf.set_subject(f"{data.site_name} {data.tenant_name}")
    pdf.set_creator("Voltpay")
    pdf.set_lang("zh-CN" if data.language == "zh" else "en")
    pdf.set_creation_date(data.at_local)  # a reprint is byte for byte the same receipt

    layout = _Layout(pdf, data.language)
    _lay_out(layout, data)
    pdf.add_page(format=(PAGE_WIDTH_MM, layout.y + MARGIN_MM))
    layout.draw()
    return bytes(pdf.output())


def _lay_out(layout: _Layout, data: ReceiptData) -> None:
    layout.paragraph(data.site_name, size=11, bold=True)
    layout.gap(1.5)
    zh_title, en_title = TITLES[data.kind]
    if layout.language == "zh":
        layout.paragraph(zh_title, size=15, bold=True)
        layout.paragraph(en_title.upper(), size=7, grey=True)
    else:
        layout.paragraph(en_title, size=14, bold=True)
    layout.rule()

    method = NONE_SHOWN
    if data.payment_method:
        known = PAYMENT_METHODS.get(data.payment_method)
        method = layout.text(known) if known else data.payment_method
    layout.row(LABELS["receipt_no"], data.receipt_no, bold=True)
    layout.row(LABELS["at"], format_local_time(data.at_local))
    layout.row(LABELS["account"], data.account_number)
    layout.row(LABELS["tenant"], data.tenant_name)
    layout.row(LABELS["units"], ", ".join(data.units) or NONE_SHOWN)
    layout.row(LABELS["meters"], ", ".join(data.meters) or NONE_SHOWN)
    layout.row(PAYMENT_LABELS[data.kind], method)
    layout.row(LABELS["operator"], data.operator)
    layout.rule()

    amount = format_amount(data.amount, data.currency)
    layout.row(AMOUNT_LABELS[data.kind], amount, size=12, bold=True, align="R")
    layout.row(LABELS["balance"], format_amount(data.balance_after, data.currency), align="R")
    if data.note.strip():
        layout.rule()
        layout.row(LABELS["note"], data.note.strip())
    layout.rule()

    layout.gap(6)
    layout.signature(LABELS["signature"])
    layout.gap(3)
    layout.paragraph(layout.text(LABELS["footer"]), size=7, grey=True)


def format_amount(amount: Decimal, currency: str) -> str:
    """`CNY 1,234.50`: thousands separators and 2 decimal places, from a Decimal."""
    return f"{currency} {format_money(amount)}"


def format_local_time(at: datetime) -> str:
    """`2026-11-25 14:03:07 UTC+08:00`: the site's local time with its offset."""
    offset = at.utcoffset()
    if offset is None:
        raise ValueError("A receipt time must be timezone-aware")
    minutes = round(offset.total_seconds() / 60)
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{at:%Y-%m-%d %H:%M:%S} UTC{sign}{hours:02d}:{minutes:02d}"


@dataclass(frozen=True)
class _Text:
    x: float
    y: float
    w: float
    h: float
    text: str
    size: float
    bold: bool
    align: str
    grey: bool


@dataclass(frozen=True)
class _Line:
    x1: float
    x2: float
    y: float
    dashed: bool


# A word is a run of characters that are neither spaces nor CJK; each CJK character stands alone
# (Chinese breaks between any two characters). Trailing spaces stay with their word.
_CJK = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef"
_TOKENS = re.compile(rf"[^\s{_CJK}]+\s*|[{_CJK}]\s*|\s+")


@dataclass
class _Layout:
    """Places text and lines from the top of the page down; draw() then puts them on the page."""

    pdf: FPDF
    language: str
    y: float = MARGIN_MM
    items: list[_Text | _Line] = field(default_factory=list)

    def text(self, label: tuple[str, str]) -> str:
        """A label or value in this receipt's language: Chinese with English, or English."""
        zh, en = label
        return f"{zh} {en}" if self.language == "zh" and zh != en else en

    def gap(self, mm: float) -> None:
        self.y += mm

    def paragraph(self, text: str, *, size: float, bold: bool = False, grey: bool = False) -> None:
        self.y += self._lines(text, MARGIN_MM, CONTENT_WIDTH_MM, self.y, size, bold, "C", grey)

    def row(
        self,
        label: tuple[str, str],
        value: str,
        *,
        size: float = 9,
        bold: bool = False,
        align: str = "L",
    ) -> None:
        zh, en = label
        top = self.y + 0.6
        if self.language == "zh":
            label_height = self._lines(zh, MARGIN_MM, LABEL_WIDTH_MM, top, 8, False, "L", False)
            label_height += self._lines(
                en, MARGIN_MM, LABEL_WIDTH_MM, top + label_height, 5.5, False, "L", True
            )
        else:
            label_height = self._lines(en, MARGIN_MM, LABEL_WIDTH_MM, top, 8, False, "L", True)
        value_x = MARGIN_MM + LABEL_WIDTH_MM
        value_height = self._lines(value, value_x, VALUE_WIDTH_MM, top, size, bold, align, False)
        self.y = top + max(label_height, value_height) + 0.6

    def rule(self, *, dashed: bool = True) -> None:
        self.y += 1.5
        self.items.append(_Line(MARGIN_MM, PAGE_WIDTH_MM - MARGIN_MM, self.y, dashed))
        self.y += 1.5

    def signature(self, label: tuple[str, str]) -> None:
        """The label, and a line beside it to sign on."""
        zh, en = label
        text = f"{zh} / {en}" if self.language == "zh" else en
        self.y += self._lines(text, MARGIN_MM, CONTENT_WIDTH_MM, self.y, 8, False, "L", False)
        self.y += 9
        self.items.append(_Line(MARGIN_MM, PAGE_WIDTH_MM - MARGIN_MM, self.y, False))

    def _lines(
        self,
        text: str,
        x: float,
        width: float,
        top: float,
        size: float,
        bold: bool,
        align: str,
        grey: bool,
    ) -> float:
        """Wrap `text` to `width` and place its lines from `top`; the height they take."""
        self.pdf.set_font(FAMILY, "B" if bold else "", size)
        height = size * PT_MM * LINE_SPACING
        lines = wrap(self.pdf, text, width)
        for number, line in enumerate(lines):
            y = top + number * height
            self.items.append(_Text(x, y, width, height, line, size, bold, align, grey))
        return len(lines) * height

    def draw(self) -> None:
        pdf = self.pdf
        for item in self.items:
            if isinstance(item, _Text):
                pdf.set_font(FAMILY, "B" if item.bold else "", item.size)
                pdf.set_text_color(110 if item.grey else 0)
                pdf.set_xy(item.x, item.y)
                pdf.cell(item.w, item.h, item.text, align=item.align)
            else:
                pdf.set_draw_color(0)
                pdf.set_line_width(0.2)
                if item.dashed:
                    pdf.set_dash_pattern(dash=0.8, gap=0.8)
                pdf.line(item.x1, item.y, item.x2, item.y)
                pdf.set_dash_pattern()


def wrap(pdf: FPDF, text: str, width: float) -> list[str]:
    """`text` broken into lines no wider than `width` in the PDF's current font.

    Lines break after spaces and between CJK characters; a word wider than a line breaks
    anywhere. Each newline in `text` starts a new line.
    """
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for token in _TOKENS.findall(paragraph):
            if pdf.get_string_width((line + token).rstrip()) <= width:
                line += token
                continue
            if line.strip():
                lines.append(line.rstrip())
            line = ""
            for char in token.lstrip():
                if line and pdf.get_string_width(line + char) > width:
                    lines.append(line.rstrip())
                    line = ""
                line += char
        lines.append(line.rstrip())
    return lines


def receipt_for_entry(
    session: Session,
    entry_id: int,
    *,
    site_name: str,
    currency: str,
    tz: ZoneInfo,
    language: str = "zh",
) -> ReceiptData:
    """The receipt of a sale, refund or reversal as it stands in the ledger (for a reprint too)."""
    entry = session.get(LedgerEntry, entry_id)
    if entry is None or entry.kind not in KINDS or entry.receipt_no is None:
        raise NotFound(f"No receipt for ledger entry {entry_id}")
    account = session.get_one(Account, entry.account_id)
    meters = session.execute(
        select(Meter.serial, Unit.number)
        .join(AccountMeter, AccountMeter.meter_id == Meter.id)
        .outerjoin(Unit, Unit.id == Meter.unit_id)
        .where(
            AccountMeter.account_id == account.id,
            AccountMeter.attached_at <= entry.effective_at,
            or_(AccountMeter.detached_at.is_(None), AccountMeter.detached_at >= entry.effective_at),
        )
        .order_by(Meter.serial)
    ).all()
    operator = session.get(Operator, entry.operator_id) if entry.operator_id else None
    note = entry.note
    if entry.kind == "reversal" and entry.reference_id is not None:
        reversed_no = session.get_one(LedgerEntry, entry.reference_id).receipt_no
        note = note or f"reverses {reversed_no}"
    return ReceiptData(
        site_name=site_name,
        receipt_no=entry.receipt_no,
        kind=entry.kind,
        account_number=account.number,
        tenant_name=account.tenant_name,
        units=[unit for _, unit in meters if unit],
        meters=[serial for serial, _ in meters],
        amount=abs(entry.amount).quantize(Decimal("0.01")),
        balance_after=entry.balance_after.quantize(Decimal("0.01")),
        currency=currency,
        payment_method=entry.payment_method,
        operator=(operator.display_name or operator.username) if operator else "system",
        at_local=entry.effective_at.astimezone(tz),
        note=note,
        language=language,
    )
