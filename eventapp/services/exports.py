"""Participant exports: column presets for the real uses, CSV (UTF-8 with BOM) and XLSX.

The presets are plain data so printed rosters (documents) can reuse them: `table(event, preset)`
gives the header row and the value rows in 五十音順.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from ..formatting import JST, answer_text, format_datetime, kana_sort_key, to_jst
from ..models import Event, Registration
from . import audit
from .errors import ValidationFailed
from .participants import registrations_for

# Spreadsheet programs run a cell that starts with these as a formula (CSV/formula injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
IWATE_LABELS = {"origin": "岩手県出身", "connected": "ゆかりがある", "none": "特になし"}


@dataclass(frozen=True)
class Column:
    header: str
    value: Callable[[Registration], object]


def _answer(key_or_label: str) -> Callable[[Registration], str]:
    def value(r: Registration) -> str:
        for a in r.answers:
            if (a.question is not None and a.question.key == key_or_label) or a.question_label == key_or_label:
                return answer_text(a)
        return ""
    return value


def _status(r: Registration) -> str:
    return {"confirmed": "参加確定", "waitlisted": "キャンセル待ち", "cancelled": "キャンセル済み",
            "applied": "抽選応募中", "not_selected": "落選"}[r.status]


NO = Column("No.", lambda r: "")  # numbered when the table is built
NAME = Column("氏名", lambda r: r.name)
FURIGANA = Column("ふりがな", lambda r: r.furigana)
EMAIL = Column("メールアドレス", lambda r: r.person.email or "")
PHONE = Column("電話番号", lambda r: r.phone)
PREFECTURE = Column("都道府県", lambda r: r.prefecture)
STATUS = Column("状態", _status)
TICKET = Column("受付コード", lambda r: r.ticket_code)
CHECK = Column("受付", lambda r: "")  # an empty box to tick on paper
NOTE = Column("事務局メモ", lambda r: r.staff_note)

PRESETS: dict[str, tuple[str, list[Column]]] = {
    "reception": ("受付用", [NO, NAME, FURIGANA, STATUS, TICKET, CHECK, NOTE]),
    "bus": ("バス名簿", [NO, NAME, FURIGANA, PHONE, Column("乗車", _answer("bus")), NOTE]),
    "lodging": ("宿泊名簿", [NO, NAME, FURIGANA, PREFECTURE, PHONE, Column("宿泊", _answer("lodging")),
                            Column("食事の配慮", _answer("dietary")), NOTE]),
    "insurance": ("保険名簿", [NO, NAME, FURIGANA, PREFECTURE, PHONE, EMAIL]),
    "all": ("全項目", []),  # built per event: every attendee field, every question, every timestamp
}
# Rosters for the bus, rooms and insurer list people who are coming; reception also shows the waitlist.
PRESET_STATUSES = {"reception": ("confirmed", "waitlisted"),
                   "all": ("confirmed", "waitlisted", "applied", "not_selected", "cancelled")}


def _all_columns(event: Event) -> list[Column]:
    columns = [NO, NAME, FURIGANA, EMAIL, PHONE, PREFECTURE,
               Column("岩手との関係", lambda r: str(IWATE_LABELS.get(r.iwate_relation, ""))),
               Column("職業", lambda r: r.occupation), Column("スキル", lambda r: r.skills),
               # Times as values: XLSX stores them as dates (sortable, filterable), CSV prints them.
               STATUS, Column("申込日時", lambda r: _jst(r.created_at)),
               Column("確定日時", lambda r: _jst(r.confirmed_at)),
               Column("キャンセル日時", lambda r: _jst(r.cancelled_at)),
               Column("申込経路", lambda r: {"staff": "事務局", "web": "Web", "api": "API"}.get(r.source, r.source)),
               Column("同意した規約版", lambda r: r.consent_version + ("(英語版)" if r.consent_language == "en" else "")), TICKET, NOTE]
    # Every question ever asked, removed ones too, so no given answer is lost from the export.
    for question in event.questions:
        label = question.label + ("" if question.is_active else "(削除済み)")
        columns.append(Column(label, _answer(question.key)))
    return columns


def preset_columns(event: Event, preset: str) -> list[Column]:
    if preset not in PRESETS:
        raise ValidationFailed({"preset": "出力形式を選んでください。"})
    if preset == "all":
        return _all_columns(event)
    columns = list(PRESETS[preset][1])
    # Event-specific answers that matter on a roster are shown even when the preset does not name them.
    keys = {"bus", "lodging", "dietary"}
    if preset == "reception":
        columns[-1:-1] = [Column(q.label, _answer(q.key)) for q in event.active_questions if q.key in keys]
    return columns


def _jst(value: datetime | None) -> datetime | None:
    return to_jst(value) if value is not None else None


def neutralise(value: object) -> object:
    """Prefix text that a spreadsheet would treat as a formula with an apostrophe (CSV only: an XLSX
    cell is typed as text instead, so the apostrophe would show)."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def table(event: Event, preset: str) -> tuple[list[str], list[list[object]]]:
    """Header and rows (五十音順, numbered) for a preset: plain values (text, numbers, JST datetimes), made
    safe for spreadsheets by to_csv / to_xlsx (headers too: they carry staff-written question labels)."""
    columns = preset_columns(event, preset)
    statuses = PRESET_STATUSES.get(preset, ("confirmed",))
    registrations = [r for r in registrations_for(event.id) if r.status in statuses]
    registrations.sort(key=lambda r: (r.status != "confirmed", kana_sort_key(r.furigana), r.id))
    rows = []
    for n, registration in enumerate(registrations, start=1):
        rows.append([n if column is NO else column.value(registration) for column in columns])
    return [c.header for c in columns], rows


def to_csv(header: list[str], rows: list[list[object]]) -> bytes:
    """UTF-8 with BOM and CRLF so Japanese Excel opens it with the right characters."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([_csv_cell(name) for name in header])
    writer.writerows([_csv_cell(value) for value in row] for row in rows)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def _csv_cell(value: object) -> object:
    if isinstance(value, datetime):
        return format_datetime(value)
    return "" if value is None else neutralise(value)


XLSX_DATETIME = "yyyy/mm/dd hh:mm"


def to_xlsx(header: list[str], rows: list[list[object]], title: str) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = title[:31]
    sheet.append(header)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.data_type = "s"  # a header is text too, whatever a question label starts with
    for row in rows:
        # Excel has no time zones: JST wall-clock times, as staff read them.
        sheet.append([v.astimezone(JST).replace(tzinfo=None) if isinstance(v, datetime) else v for v in row])
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str):
                cell.data_type = "s"  # stored as text, never run as a formula (no apostrophe needed)
            elif isinstance(cell.value, datetime):
                cell.number_format = XLSX_DATETIME
    for index, name in enumerate(header, start=1):
        width = max([len(str(name))] + [8 if isinstance(r[index - 1], datetime) else len(str(r[index - 1]))
                                         for r in rows[:200]]) * 2 + 2
        sheet.column_dimensions[get_column_letter(index)].width = min(width, 50)
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = sheet.dimensions  # filter buttons on the header row
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def export(event: Event, preset: str, fmt: str) -> tuple[bytes, str, str]:
    """Build an export and audit-log it. Returns (content, mimetype, filename)."""
    if fmt not in ("csv", "xlsx"):
        raise ValidationFailed({"format": "CSVかExcelを選んでください。"})
    header, rows = table(event, preset)
    label = PRESETS[preset][0]
    filename = f"{event.slug}-{preset}.{fmt}"
    if fmt == "csv":
        content, mimetype = to_csv(header, rows), "text/csv; charset=utf-8"
    else:
        content = to_xlsx(header, rows, label)
        mimetype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    audit.record("export", "event", event.id, f"{event.title}: {label}を{fmt.upper()}で出力({len(rows)}名)",
                 {"preset": preset, "format": fmt, "rows": len(rows)})
    return content, mimetype, filename
