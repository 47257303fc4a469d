"""Exports: presets, CSV with BOM, XLSX read back with openpyxl, formula injection neutralised."""

from __future__ import annotations

import csv
import io

import pytest
from openpyxl import load_workbook

from eventapp.extensions import db
from eventapp.models import AuditEntry, Registration
from eventapp.services import exports
from eventapp.services.errors import ValidationFailed
from tests.conftest import make_event, make_registration

# Tab and CR never reach the database (sign-up input is cleaned), so they are tested on neutralise().
HOSTILE = ["=HYPERLINK(\"http://evil\")", "+1+1", "-2+3", "@SUM(A1)"]


def test_neutralise_every_dangerous_prefix():
    for value in (*HOSTILE, "\tTAB", "\rCR"):
        assert exports.neutralise(value) == "'" + value
    assert exports.neutralise("岩手 花子") == "岩手 花子" and exports.neutralise(3) == 3


def _event_with_people():
    event = make_event(capacity=2, questions=[{"key": "bus", "kind": "yesno", "label": "送迎バス"},
                                              {"key": "dietary", "kind": "text", "label": "食事の配慮"}])
    make_registration(event, name="佐藤 花子", furigana="さとう はなこ", answers={"bus": "yes", "dietary": "=1+1"})
    make_registration(event, name="阿部 一郎", furigana="あべ いちろう", phone="090-1111-2222", answers={"bus": "no"})
    make_registration(event, name="待機 三郎", furigana="たいき さぶろう")
    return event


def test_csv_has_bom_and_japanese_and_presets_choose_people(ctx):
    event = _event_with_people()
    content, mimetype, filename = exports.export(event, "bus", "csv")
    db.session.commit()
    assert content.startswith(b"\xef\xbb\xbf") and mimetype.startswith("text/csv")
    assert filename == f"{event.slug}-bus.csv"
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert rows[0] == ["No.", "氏名", "ふりがな", "電話番号", "乗車", "事務局メモ"]
    assert [r[1] for r in rows[1:]] == ["阿部 一郎", "佐藤 花子"]  # confirmed only, 五十音順
    assert rows[1][3] == "090-1111-2222"  # harmless text is exported unchanged
    entry = db.session.query(AuditEntry).filter_by(action="export").one()
    assert entry.details == {"preset": "bus", "format": "csv", "rows": 2}


def test_reception_includes_waitlist_and_all_includes_answers(ctx):
    event = _event_with_people()
    header, rows = exports.table(event, "reception")
    assert "送迎バス" in header and [r[header.index("状態")] for r in rows] == ["参加確定", "参加確定", "キャンセル待ち"]
    header, rows = exports.table(event, "all")
    assert {"メールアドレス", "送迎バス", "食事の配慮", "申込日時"} <= set(header)
    sato = next(r for r in rows if r[1] == "佐藤 花子")
    assert sato[header.index("送迎バス")] == "はい"
    with pytest.raises(ValidationFailed):
        exports.table(event, "nonsense")


@pytest.mark.parametrize("hostile", HOSTILE)
def test_formula_injection_is_neutralised_in_csv_and_xlsx(ctx, hostile):
    event = make_event()
    make_registration(event, name=hostile, furigana="あ")
    content, _, _ = exports.export(event, "all", "csv")
    row = list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))[1]
    assert row[1] == "'" + hostile
    content, _, _ = exports.export(event, "all", "xlsx")
    sheet = load_workbook(io.BytesIO(content)).active
    cell = sheet.cell(row=2, column=2)
    # XLSX: typed as text (never a formula), shown as entered: no apostrophe (issue 15, item 15)
    assert cell.value == hostile and cell.data_type == "s"


def test_xlsx_round_trip(ctx):
    event = _event_with_people()
    content, mimetype, filename = exports.export(event, "insurance", "xlsx")
    assert filename.endswith(".xlsx") and "spreadsheetml" in mimetype
    sheet = load_workbook(io.BytesIO(content)).active
    assert sheet.title == "保険名簿"
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[0] == ["No.", "氏名", "ふりがな", "都道府県", "電話番号", "メールアドレス"]
    assert [v[1] for v in values[1:]] == ["阿部 一郎", "佐藤 花子"]
    assert values[1][0] == 1


def test_xlsx_dates_are_dates_with_an_autofilter_and_csv_prints_them(ctx):
    from datetime import datetime

    from eventapp.formatting import format_datetime, to_jst

    event = _event_with_people()
    registration = db.session.query(Registration).order_by(Registration.id).first()
    content, _, _ = exports.export(event, "all", "xlsx")
    sheet = load_workbook(io.BytesIO(content)).active
    header = [c.value for c in sheet[1]]
    assert sheet.auto_filter.ref == sheet.dimensions and sheet.auto_filter.ref.startswith("A1:")
    applied = {sheet.cell(row=n, column=header.index("氏名") + 1).value: sheet.cell(row=n, column=header.index("申込日時") + 1)
               for n in range(2, sheet.max_row + 1)}
    cell = applied[registration.person.name]
    assert isinstance(cell.value, datetime) and cell.is_date and cell.number_format == "yyyy/mm/dd hh:mm"
    assert cell.value == to_jst(registration.created_at).replace(tzinfo=None, microsecond=cell.value.microsecond)
    assert sheet.cell(row=2, column=header.index("キャンセル日時") + 1).value is None
    csv_content, _, _ = exports.export(event, "all", "csv")
    rows = list(csv.reader(io.StringIO(csv_content.decode("utf-8-sig"))))
    row = next(r for r in rows if r[1] == registration.person.name)
    assert row[rows[0].index("申込日時")] == format_datetime(registration.created_at)
