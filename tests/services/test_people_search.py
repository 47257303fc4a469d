"""Staff person search in SQL on the stored search keys (issue 23 item 2): folding, phone digits,
the limit, registration counts in the same statement, and anonymised people out of reach."""

from __future__ import annotations

import pytest
from sqlalchemy import event, func, insert, select

from eventapp.extensions import db
from eventapp.models import Person, Registration
from eventapp.services import participants, privacy
from eventapp.services.text import name_search_key, phone_digits, search_fold
from tests.conftest import make_event, make_registration


def _ids(q: str, **kwargs) -> list[int]:
    return [hit.id for hit in participants.search_people(q, **kwargs).hits]


@pytest.mark.parametrize(("typed", "folded"), [
    ("サトウ ハナコ", "さとうはなこ"),  # katakana, spaces
    ("ｻﾄｳ　ﾊﾅｺ", "さとうはなこ"),  # half-width katakana, an ideographic space
    ("ＳＡＴＯ　Hanako", "satohanako"),  # full-width letters, case
    ("佐藤\t花子", "佐藤花子"),
    ("ヴァイオリン", "ゔぁいおりん"),
])
def test_search_fold(typed, folded):
    assert search_fold(typed) == folded


@pytest.mark.parametrize(("phone", "digits"), [
    ("090-1234-5678", "09012345678"), ("０９０ー１２３４ー５６７８", "09012345678"),
    ("(019) 651-3111", "0196513111"), ("+81 90-1234-5678", "09012345678"), ("", ""),
])
def test_phone_digits(phone, digits):
    assert phone_digits(phone) == digits


def test_name_and_furigana_match_in_any_kana_width_or_spacing(ctx):
    sato = make_registration(make_event(), email="sato@example.jp", name="佐藤 花子", furigana="さとう はなこ")
    make_registration(make_event(), email="suzuki@example.jp", name="鈴木 一郎", furigana="すずき いちろう")
    person = db.session.get(Person, sato.person_id)
    assert person.search_name == name_search_key("佐藤 花子", "さとう はなこ") == "佐藤花子 さとうはなこ"
    for q in ("佐藤", "佐藤花子", "佐藤　花子", "さとう", "サトウ", "ｻﾄｳ", "サトウ ハナコ", "とうはな", "SATO@EXAMPLE"):
        assert _ids(q) == [sato.person_id], q
    # The space between name and furigana is never matched across.
    assert _ids("花子さとう") == []
    assert _ids("%") == [] and _ids("_") == []  # LIKE wildcards are literal


def test_phone_digits_are_searchable(ctx):
    reg = make_registration(make_event(), email="phone@example.jp", phone="090-1234-5678")
    make_registration(make_event(), email="other@example.jp", phone="080-9999-0000")
    assert db.session.get(Person, reg.person_id).search_phone == "09012345678"
    for q in ("090-1234", "09012345678", "１２３４－５６７８", "1234 5678", "+81 90-1234"):
        result = participants.search_people(q)
        assert result.by_phone and [h.id for h in result.hits] == [reg.person_id], q
    assert _ids("090-0000-0000") == []


def test_an_attendee_phone_on_a_registration_is_searchable_too(ctx):
    first = make_registration(make_event(), email="family@example.jp", name="岩手 一郎", phone="090-1111-2222")
    make_registration(make_event(), email="family@example.jp", name="岩手 さくら", phone="080-3333-4444")
    assert _ids("080-3333") == [first.person_id]
    assert _ids("さくら") == [first.person_id]


def test_limit_in_sql_with_a_more_note_and_counts_in_one_statement(ctx):
    events = [make_event(), make_event()]
    for n in range(7):
        make_registration(events[0], email=f"iwate{n}@example.jp", name=f"岩手 {n}郎", furigana="いわて")
    for n in range(3):  # three people with two registrations, one under another attendee's name
        make_registration(events[1], email=f"iwate{n}@example.jp", name=f"岩手 別{n}", furigana="いわて べつ")
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        if statement.strip().upper() != "BEGIN":  # not SQLite's explicit BEGIN
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        result = participants.search_people("いわて", limit=5)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(statements) == 1, statements  # people, counts and attendee names in one statement
    assert "LIMIT" in statements[0].upper()
    assert len(result.hits) == 5 and result.more
    by_email = {h.email: h for h in result.hits}
    assert by_email["iwate0@example.jp"].registrations == 2
    assert by_email["iwate0@example.jp"].other_attendees == ("岩手 別0",)
    assert by_email["iwate4@example.jp"].registrations == 1 and by_email["iwate4@example.jp"].other_attendees == ()
    everyone = participants.search_people("いわて", limit=50)
    assert len(everyone.hits) == 7 and not everyone.more


def test_anonymised_people_are_not_found_by_their_old_name_phone_or_address(ctx):
    gone = make_registration(make_event(), email="gone@example.jp", name="消える 人", furigana="きえる ひと",
                             phone="090-5555-6666")
    kept = make_registration(make_event(), email="kept@example.jp", name="残る 人", furigana="のこる ひと")
    assert set(_ids("人")) == {gone.person_id, kept.person_id}
    privacy.anonymise_person(gone.person_id, reason="テスト")
    db.session.commit()
    for q in ("消える", "きえる", "090-5555", "gone@", "匿名", "とくめい"):
        assert _ids(q) == [], q
    assert _ids("人") == [kept.person_id]
    keys = db.session.execute(select(Registration.search_name, Registration.search_phone)
                              .where(Registration.person_id == gone.person_id)).one()
    assert tuple(keys) == ("", "")


def test_every_writer_keeps_the_keys(ctx):
    """Sign-up (Core insert), companions, a staff correction (ORM update) and the ORM insert hook."""
    from eventapp.services.participants import update_registration_details
    from tests.conftest import person_input

    reg = make_registration(make_event(), email="writer@example.jp", name="岩手 太郎", furigana="いわて たろう")
    changes = update_registration_details(reg.id, {**person_input(name="盛岡 次郎", furigana="モリオカ ジロウ"),
                                                   "phone": "019-123-4567"}, {})
    db.session.commit()
    assert "name" in changes
    row = db.session.execute(select(Registration.search_name, Registration.search_phone)
                             .where(Registration.id == reg.id)).one()
    assert tuple(row) == ("盛岡次郎 もりおかじろう", "0191234567")
    assert _ids("じろう") == [reg.person_id] and _ids("019-123") == [reg.person_id]
    orm = Person(email="orm@example.jp", name="ＯＲＭ 花子", furigana="おーあーるえむ", phone="03-1111-2222")
    db.session.add(orm)
    db.session.commit()
    assert (orm.search_name, orm.search_phone) == ("orm花子 おーあーるえむ", "0311112222")
    orm.furigana = "オーアールエム ハナコ"
    db.session.commit()
    assert orm.search_name == "orm花子 おーあーるえむはなこ"
    # Every person and registration row carries the keys its name, furigana and phone give.
    for table in (Person, Registration):
        for name, furigana, phone, key, digits in db.session.execute(select(
                table.name, table.furigana, table.phone, table.search_name, table.search_phone)):
            assert (key, digits) == (name_search_key(name, furigana), phone_digits(phone))


def test_a_bulk_insert_without_keys_fails_instead_of_hiding_the_person(ctx):
    from sqlalchemy.exc import IntegrityError

    from eventapp.database import column_values

    with pytest.raises(IntegrityError):
        db.session.execute(insert(Person.__table__), column_values(
            Person.__table__, {"email": "bulk@example.jp", "name": "一括", "furigana": "いっかつ"}))
    db.session.rollback()
    assert db.session.execute(select(func.count()).select_from(Person)).scalar_one() == 0


def test_people_page_shows_counts_and_the_more_note(app, client, monkeypatch):
    from tests.staff_support import login, make_user

    with app.app_context():
        event_ = make_event()
        for n in range(3):
            make_registration(event_, email=f"page{n}@example.jp", name=f"花巻 {n}", furigana="はなまき")
        user = make_user("staff")
        login(client, user.email)
    page = client.get("/staff/people?q=ハナマキ").get_data(as_text=True)
    assert all(f"page{n}@example.jp" in page for n in range(3)) and 'id="more-results"' not in page
    monkeypatch.setattr(participants, "SEARCH_LIMIT", 2)
    page = client.get("/staff/people?q=ﾊﾅﾏｷ").get_data(as_text=True)
    assert sum(f"page{n}@example.jp" in page for n in range(3)) == 2 and 'id="more-results"' in page
