"""Participant screens and event sub-forms through HTTP: list filters, phone sign-up, moves, notes, mail,
programme and question editors."""

from __future__ import annotations

import re

import pytest

from eventapp.extensions import db
from eventapp.models import Event, OutboxMessage, Registration
from tests.conftest import jst, make_event, make_registration
from tests.staff_support import login, make_user, post_form


@pytest.fixture
def staff_client(app, client):
    with app.app_context():
        email = make_user("staff").email
    login(client, email)
    return client


@pytest.fixture
def full_event(app):
    with app.app_context():
        event = make_event(capacity=1, questions=[{"key": "bus", "kind": "yesno", "label": "送迎バス"}])
        first = make_registration(event, name="佐藤 一", furigana="さとう はじめ", answers={"bus": "yes"})
        second = make_registration(event, name="阿部 二葉", furigana="あべ ふたば", answers={"bus": "no"})
        return {"event": event.id, "first": first.id, "second": second.id}


def test_list_counts_search_filter_and_sort(staff_client, full_event):
    url = f"/staff/events/{full_event['event']}/participants"
    html = staff_client.get(url).get_data(as_text=True)
    assert "参加確定 <strong>1</strong> / 定員 1" in html and "キャンセル待ち <strong>1</strong>" in html
    assert html.index("阿部 二葉") < html.index("佐藤 一")  # 五十音順
    html = staff_client.get(url + "?sort=signup").get_data(as_text=True)
    assert html.index("佐藤 一") < html.index("阿部 二葉")
    html = staff_client.get(url + "?q=ふたば").get_data(as_text=True)
    assert "阿部 二葉" in html and "佐藤 一" not in html
    html = staff_client.get(url + "?status=confirmed").get_data(as_text=True)
    assert "佐藤 一" in html and "阿部 二葉" not in html


def test_list_is_paginated_keeping_sort_and_filters(app, staff_client, full_event, monkeypatch):
    from eventapp.services import participants
    monkeypatch.setattr(participants, "PARTICIPANTS_PER_PAGE", 2)
    with app.app_context():
        event = db.session.get(Event, full_event["event"])
        make_registration(event, name="伊藤 三郎", furigana="いとう さぶろう", answers={"bus": "yes"})
        make_registration(event, name="上野 四季", furigana="うえの しき", answers={"bus": "no"})
    url = f"/staff/events/{full_event['event']}/participants"
    first = staff_client.get(url).get_data(as_text=True)
    assert "阿部 二葉" in first and "伊藤 三郎" in first and "上野 四季" not in first
    assert "表示中 <strong>4</strong>名" in first and "1 / 2 ページ" in first
    second = staff_client.get(url + "?page=2").get_data(as_text=True)
    assert second.index("上野 四季") < second.index("佐藤 一") and "阿部 二葉" not in second
    question = next(a for a in re.findall(r'<option value="(\d+)"', first))
    yes = staff_client.get(f"{url}?question={question}&answer=yes&page=1").get_data(as_text=True)
    assert "伊藤 三郎" in yes and "佐藤 一" in yes and "阿部 二葉" not in yes and "ページ" not in yes.split("</table>")[1]


def test_move_waitlisted_past_capacity_warns(app, staff_client, full_event):
    response = post_form(staff_client, f"/staff/registrations/{full_event['second']}/confirm",
                         {"back": f"/staff/events/{full_event['event']}/participants"})
    assert response.status_code == 303 and response.headers["Location"].endswith("/participants")
    html = staff_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "定員を超えています(2/1名)" in html
    with app.app_context():
        assert db.session.get(Registration, full_event["second"]).status == "confirmed"


def test_phone_signup_note_resend_cancel(app, staff_client, full_event):
    event_id = full_event["event"]
    response = post_form(staff_client, f"/staff/events/{event_id}/participants/new",
                         {"name": "電話 花子", "furigana": "でんわ はなこ", "email": "",
                          "iwate_relation": "none", "answers.bus": "yes", "notify": "1"})
    assert response.status_code == 422 and "メールアドレスを入力してください。" in response.get_data(as_text=True)
    response = post_form(staff_client, f"/staff/events/{event_id}/participants/new",
                         {"name": "電話 花子", "furigana": "でんわ はなこ", "email": "phone@example.com",
                          "iwate_relation": "none", "answers.bus": "yes", "notify": "1"})
    assert response.status_code == 303
    assert "キャンセル待ち(2番目)" in staff_client.get(response.headers["Location"]).get_data(as_text=True)

    first = full_event["first"]
    post_form(staff_client, f"/staff/registrations/{first}/note", {"staff_note": "当日は遅れて参加"})
    post_form(staff_client, f"/staff/registrations/{first}/resend")
    response = post_form(staff_client, f"/staff/registrations/{first}/cancel")
    assert response.status_code == 303
    page = staff_client.get(f"/staff/registrations/{first}").get_data(as_text=True)
    assert "当日は遅れて参加" in page and "キャンセル済み" in page
    with app.app_context():
        assert db.session.get(Registration, full_event["second"]).status == "confirmed"  # promoted FIFO
        kinds = sorted(m.kind for m in db.session.query(OutboxMessage).filter_by(registration_id=first))
        assert kinds == ["registration_cancelled", "registration_confirmed", "registration_confirmed"]


def test_programme_form_parses_lines_and_reports_bad_ones(app, staff_client):
    with app.app_context():
        event = make_event(starts_at=jst(2030, 8, 1, 9), ends_at=jst(2030, 8, 1, 17))
        event_id, day_id = event.id, event.days[0].id
    url = f"/staff/events/{event_id}/programme"
    form = {"day-0-id": str(day_id), "day-0-date": "2030-08-01", "day-0-start": "09:00", "day-0-end": "17:00",
            "day-0-title": "花巻", "day-0-items": "9:30-10:00 集合 @ 新花巻駅\nお昼ごはん",
            "day-1-date": "2030-08-02", "day-1-start": "18:00", "day-1-end": "01:00", "day-1-items": ""}
    response = post_form(staff_client, url, form, token_from=url)
    assert response.status_code == 422
    assert "2行目「お昼ごはん」" in response.get_data(as_text=True)
    form["day-0-items"] = "9:30-10:00 集合 @ 新花巻駅\n12:00 昼食"
    assert post_form(staff_client, url, form).status_code == 303
    with app.app_context():
        days = db.session.get(Event, event_id).days
        assert [d.id == day_id for d in days] == [True, False]
        assert [(i.title, i.place) for i in days[0].items] == [("集合", "新花巻駅"), ("昼食", "")]
        assert days[1].ends_at == jst(2030, 8, 3, 1)  # an evening running past midnight


def test_staff_pages_show_yes_no_answers_as_hai_iie(app, staff_client, full_event):
    html = staff_client.get(f"/staff/events/{full_event['event']}/participants").get_data(as_text=True)
    cells = html[html.index("<tbody"):]
    assert ">はい</td>" in cells and ">いいえ</td>" in cells
    assert ">yes</td>" not in cells and ">no</td>" not in cells
    page = staff_client.get(f"/staff/registrations/{full_event['first']}").get_data(as_text=True)
    assert "<dt>送迎バス</dt><dd>はい</dd>" in page
    export = post_form(staff_client, f"/staff/events/{full_event['event']}/export", {"preset": "all", "format": "csv"})
    rows = export.data.decode("utf-8-sig").splitlines()
    assert any(row.endswith(",はい") or ",はい," in row for row in rows[1:])
    assert not any(",yes" in row or ",no," in row or row.endswith(",no") for row in rows[1:])


def test_question_editor_flags_a_question_important(app, staff_client):
    with app.app_context():
        event = make_event(questions=[{"key": "allergy", "kind": "text", "label": "アレルギー"}])
        event_id, question_id = event.id, event.questions[0].id
    url = f"/staff/events/{event_id}/questions"
    assert 'name="q-0-important"' in staff_client.get(url).get_data(as_text=True)
    form = {"q-0-id": str(question_id), "q-0-label": "アレルギー", "q-0-kind": "text", "q-0-important": "1"}
    assert post_form(staff_client, url, form, token_from=url).status_code == 303
    with app.app_context():
        assert db.session.get(Event, event_id).questions[0].important is True
    assert 'name="q-0-important" value="1" checked' in staff_client.get(url).get_data(as_text=True)
    form.pop("q-0-important")
    assert post_form(staff_client, url, form, token_from=url).status_code == 303
    with app.app_context():
        assert db.session.get(Event, event_id).questions[0].important is False


def test_questions_form_adds_reorders_and_removes(app, staff_client):
    with app.app_context():
        event = make_event(questions=[{"key": "bus", "kind": "yesno", "label": "送迎バス"}])
        make_registration(event, answers={"bus": "yes"})
        event_id, bus_id = event.id, event.questions[0].id
    url = f"/staff/events/{event_id}/questions"
    form = {"q-0-id": str(bus_id), "q-0-position": "2", "q-0-label": "送迎バス", "q-0-kind": "yesno",
            "q-0-remove": "1", "q-1-position": "1", "q-1-label": "宿泊タイプ", "q-1-kind": "choice",
            "q-1-choices": "和室\n洋室", "q-1-key": "lodging", "q-1-required": "1"}
    assert post_form(staff_client, url, form, token_from=url).status_code == 303
    html = staff_client.get(url).get_data(as_text=True)
    assert "宿泊タイプ" in html and "削除済みの設問" in html
    with app.app_context():
        event = db.session.get(Event, event_id)
        assert [(q.key, q.required, q.choices) for q in event.active_questions] == [
            ("lodging", True, ["和室", "洋室"])]
    # The removed question's answer is still in the full export.
    export = post_form(staff_client, f"/staff/events/{event_id}/export", {"preset": "all", "format": "csv"})
    assert "送迎バス(削除済み)" in export.data.decode("utf-8-sig")


def test_raising_capacity_in_the_form_promotes_and_says_so(app, staff_client, full_event):
    from eventapp.staff.forms import event_values

    event_id = full_event["event"]
    with app.app_context():
        values = event_values(db.session.get(Event, event_id))
    values["capacity"] = "5"
    response = post_form(staff_client, f"/staff/events/{event_id}/edit", values,
                         token_from=f"/staff/events/{event_id}/edit")
    assert response.status_code == 303
    html = staff_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "キャンセル待ちの1名が申込順に参加確定になり" in html
    with app.app_context():
        assert db.session.get(Registration, full_event["second"]).status == "confirmed"


def test_walk_in_without_required_answers_is_marked_unanswered(app, staff_client):
    """Issue 15 item 1: a walk-in may leave required questions empty; staff see 未回答 in the list."""
    import re

    from eventapp.services.checkin import walk_in
    from tests.factories import make_checkin_event

    with app.app_context():
        event = make_checkin_event(questions=[{"key": "bus", "kind": "yesno", "label": "送迎バス", "required": True},
                                              {"key": "memo", "kind": "text", "label": "メモ欄"}])
        make_registration(event, name="佐藤 一", furigana="さとう はじめ", answers={"bus": "yes"})
        walk_in(event.id, {"name": "当日 花子", "furigana": "とうじつ はなこ"}, {}, nonce="walkin-unanswered-1",
                user=make_user("checkin", email="door-unanswered@example.jp"))
        db.session.commit()
        event_id = event.id
    html = staff_client.get(f"/staff/events/{event_id}/participants").get_data(as_text=True)
    rows = {name: row for row in re.findall(r"<tr class=\"row-.*?</tr>", html, re.S)
            for name in ("当日 花子", "佐藤 一") if name in row}
    assert rows["当日 花子"].count(">未回答<") == 1  # the required question only, not the optional one
    assert "未回答" not in rows["佐藤 一"]
