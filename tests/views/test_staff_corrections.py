"""Staff corrections through HTTP: editing a registration, the person page with every registration of
an address, and merging two person records (permissions, CSRF, preview, confirmation)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from eventapp.extensions import db
from eventapp.models import AuditEntry, Person, Registration
from tests.conftest import make_event, make_registration
from tests.staff_support import login, make_user, post_form


@pytest.fixture
def scene(app):
    with app.app_context():
        event = make_event(title="花巻ブドウ収穫", questions=[
            {"key": "bus", "kind": "yesno", "label": "送迎バス", "required": True}])
        other = make_event(title="夏油温泉フィールドワーク")
        first = make_registration(event, email="family@example.jp", name="岩手 一郎", furigana="いわて いちろう",
                                  answers={"bus": "yes"})
        second = make_registration(other, email="family@example.jp", name="岩手 二郎", furigana="いわて じろう")
        typo = make_registration(other, email="family@exmaple.jp", name="岩手 三郎", furigana="いわて さぶろう")
        third = make_registration(make_event(title="地方複業セミナー"), email="family@exmaple.jp",
                                  name="岩手 三郎", furigana="いわて さぶろう")
        return {"event": event.id, "first": first.id, "second": second.id, "person": first.person_id,
                "typo_person": typo.person_id, "typo": typo.id, "third": third.id}


def _client(app, role: str):
    client = app.test_client()
    with app.app_context():
        email = make_user(role).email
    login(client, email)
    return client


def test_staff_edit_registration_and_see_it_in_the_audit_log(app, scene):
    staff = _client(app, "staff")
    url = f"/staff/registrations/{scene['first']}"
    html = staff.get(url).get_data(as_text=True)
    assert 'name="name" value="岩手 一郎"' in html and "参加者情報・回答の修正" in html
    form = {"name": "岩手 一朗", "furigana": "いわて いちろう", "phone": "", "prefecture": "東京都",
            "iwate_relation": "origin", "occupation": "", "skills": "", "answers.bus": "no"}
    response = post_form(staff, f"{url}/details", form, token_from=url)
    assert response.status_code == 303 and response.headers["Location"].endswith(url)
    assert "参加者情報を修正しました" in staff.get(url).get_data(as_text=True)
    with app.app_context():
        reg = db.session.get(Registration, scene["first"])
        assert reg.name == "岩手 一朗" and reg.answers[0].value == "no"
        assert db.session.get(Registration, scene["second"]).name == "岩手 二郎"
    audit = _client(app, "admin").get("/staff/audit?action=update").get_data(as_text=True)
    assert "岩手 一郎" in audit and "岩手 一朗" in audit and "answers.bus" in audit


def test_invalid_edit_is_422_with_messages(app, scene):
    staff = _client(app, "staff")
    url = f"/staff/registrations/{scene['first']}"
    response = post_form(staff, f"{url}/details", {"name": "", "furigana": "abc", "answers.bus": "maybe"},
                         token_from=url)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "氏名を入力してください。" in html and "ひらがなまたはカタカナ" in html and "「はい」か「いいえ」" in html
    with app.app_context():
        assert db.session.get(Registration, scene["first"]).name == "岩手 一郎"


def test_person_page_lists_every_registration_and_the_list_links_to_it(app, scene):
    staff = _client(app, "staff")
    html = staff.get(f"/staff/people/{scene['person']}").get_data(as_text=True)
    for text in ("花巻ブドウ収穫", "夏油温泉フィールドワーク", "岩手 一郎", "岩手 二郎"):
        assert text in html
    assert f"/staff/registrations/{scene['first']}" in html and f"/staff/registrations/{scene['second']}" in html
    participants = staff.get(f"/staff/events/{scene['event']}/participants").get_data(as_text=True)
    assert f'href="/staff/people/{scene["person"]}"' in participants
    found = staff.get("/staff/people?q=family@exmaple.jp").get_data(as_text=True)
    assert f"/staff/people/{scene['typo_person']}" in found and f"/staff/people/{scene['person']}\"" not in found


def test_merge_preview_refuses_a_conflict_then_merges_after_cancelling(app, scene):
    staff = _client(app, "staff")
    base = f"/staff/people/{scene['person']}/merge"
    preview = staff.get(f"{base}?email=family@exmaple.jp")
    html = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "統合できません" in html and "「夏油温泉フィールドワーク」" in html
    assert 'name="merge_id"' not in html  # no confirm button while blocked
    response = post_form(staff, base, {"merge_id": scene["typo_person"], "confirm": "yes",
                                       "email": "family@exmaple.jp"}, token_from=base)
    assert response.status_code == 303
    assert "夏油温泉フィールドワーク" in staff.get(response.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Person, scene["typo_person"]) is not None

    post_form(staff, f"/staff/registrations/{scene['typo']}/cancel", token_from="/staff/")
    html = staff.get(f"{base}?email=family@exmaple.jp").get_data(as_text=True)
    assert 'name="merge_id"' in html and "地方複業セミナー" in html and "岩手 三郎" in html
    # Without ticking the confirmation nothing happens.
    response = post_form(staff, base, {"merge_id": scene["typo_person"]}, token_from=base)
    assert response.status_code == 303 and "/merge" in response.headers["Location"]
    with app.app_context():
        assert db.session.get(Person, scene["typo_person"]) is not None
    response = post_form(staff, base, {"merge_id": scene["typo_person"], "confirm": "yes"}, token_from=base)
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/staff/people/{scene['person']}")
    html = staff.get(response.headers["Location"]).get_data(as_text=True)
    assert "統合しました(申込2件を移動しました)" in html and "地方複業セミナー" in html
    with app.app_context():
        assert db.session.get(Person, scene["typo_person"]) is None
        assert db.session.get(Registration, scene["third"]).person_id == scene["person"]
        assert db.session.execute(select(AuditEntry).where(AuditEntry.action == "merge")).scalar_one()


def test_unknown_address_in_the_preview_is_a_clear_message(app, scene):
    staff = _client(app, "staff")
    response = staff.get(f"/staff/people/{scene['person']}/merge?email=nobody@example.jp")
    assert response.status_code == 422
    assert "このメールアドレスの参加者は見つかりません。" in response.get_data(as_text=True)
    assert staff.get("/staff/people/999999/merge").status_code == 404


def test_checkin_role_may_not_edit_or_merge(app, scene):
    door = _client(app, "checkin")
    page = "/staff/people"  # any page: the check-in role gets 403 before the form is read
    token_page = "/checkin/"
    assert door.get(page).status_code == 403
    assert door.get(f"/staff/registrations/{scene['first']}").status_code == 403
    assert door.get(f"/staff/people/{scene['person']}/merge?email=family@exmaple.jp").status_code == 403
    edit = post_form(door, f"/staff/registrations/{scene['first']}/details", {"name": "乗っ取り"},
                     token_from=token_page)
    merge = post_form(door, f"/staff/people/{scene['person']}/merge",
                      {"merge_id": scene["typo_person"], "confirm": "yes"}, token_from=token_page)
    assert edit.status_code == 403 and merge.status_code == 403
    with app.app_context():
        assert db.session.get(Registration, scene["first"]).name == "岩手 一郎"
        assert db.session.get(Person, scene["typo_person"]) is not None


def test_edit_and_merge_need_the_csrf_token(app, scene):
    staff = _client(app, "staff")
    edit = staff.post(f"/staff/registrations/{scene['first']}/details", data={"name": "岩手 一朗"})
    merge = staff.post(f"/staff/people/{scene['person']}/merge", data={"merge_id": scene["typo_person"],
                                                                     "confirm": "yes"})
    assert edit.status_code == 400 and merge.status_code == 400
    with app.app_context():
        assert db.session.get(Registration, scene["first"]).name == "岩手 一郎"
        assert db.session.get(Person, scene["typo_person"]) is not None
