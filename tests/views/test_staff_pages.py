"""Staff pages render for the right people and their forms drive the services."""

from __future__ import annotations

import re

import pytest

from eventapp.extensions import db
from eventapp.models import AuditEntry, Event, OutboxMessage, Registration
from tests.conftest import future, make_event, make_registration
from tests.staff_support import login, make_user, post_form


@pytest.fixture
def staff_client(app, client):
    with app.app_context():
        user = make_user("staff")
        login(client, user.email)
    return client


def test_login_lands_on_dashboard_with_upcoming_events(ctx, client):
    event = make_event(capacity=3, title="花巻ぶどう収穫")
    make_registration(event)
    user = make_user("staff")
    response = login(client, user.email)
    assert response.headers["Location"].endswith("/staff/")
    html = client.get("/staff/").get_data(as_text=True)
    assert "花巻ぶどう収穫" in html
    assert "1</strong> / 3" in html
    assert "ログアウト" in html
    assert "監査ログ" not in html  # admin-only navigation is hidden from staff


def test_every_staff_page_renders(ctx, staff_client):
    event = make_event(questions=[{"key": "bus", "kind": "yesno", "label": "送迎バスを利用しますか"}])
    registration = make_registration(event, answers={"bus": "yes"})
    for url in ("/staff/", "/staff/events", "/staff/events?show=all", "/staff/events/new",
                f"/staff/events/{event.id}", f"/staff/events/{event.id}/edit",
                f"/staff/events/{event.id}/programme", f"/staff/events/{event.id}/questions",
                f"/staff/events/{event.id}/participants", f"/staff/events/{event.id}/participants/new",
                f"/staff/events/{event.id}/cancel", f"/staff/events/{event.id}/duplicate",
                f"/staff/events/{event.id}/message", f"/staff/registrations/{registration.id}",
                "/staff/people?q=岩手", f"/staff/people/{registration.person_id}", "/staff/account/password"):
        response = staff_client.get(url)
        assert response.status_code == 200, url
        assert "遠恋複業課 事務局" in response.get_data(as_text=True)


def test_create_event_with_validation_messages(ctx, staff_client):
    form = {"title": "陸前高田 オンラインセミナー", "kind": "online_seminar", "slug": "rikuzentakata-online",
            "starts_at": "2030-05-10T19:00", "ends_at": "2030-05-10T18:00", "capacity": "-1", "fee_yen": "0",
            "registration_closes_at": "2030-05-11T12:00"}
    response = post_form(staff_client, "/staff/events/new", form, token_from="/staff/events/new")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "終了日時は開始日時より後にしてください。" in html
    assert "定員は0以上の整数で入力してください。" in html
    assert db.session.query(Event).count() == 0

    form.update(ends_at="2030-05-10T20:30", capacity="50", registration_closes_at="2030-05-12T12:00")
    html = post_form(staff_client, "/staff/events/new", form).get_data(as_text=True)
    assert "申込締切はイベント終了より前にしてください。" in html

    form["registration_closes_at"] = "2030-05-09T12:00"
    response = post_form(staff_client, "/staff/events/new", form)
    assert response.status_code == 303
    event = db.session.query(Event).one()
    assert (event.title, event.status, event.capacity) == ("陸前高田 オンラインセミナー", "draft", 50)
    assert db.session.query(AuditEntry).filter_by(action="create", object_id=event.id).count() == 1


def test_lowering_capacity_below_confirmed_is_refused(ctx, staff_client):
    event = make_event(capacity=3)
    for _ in range(3):
        make_registration(event)
    url = f"/staff/events/{event.id}/edit"
    page = staff_client.get(url).get_data(as_text=True)
    assert 'value="3"' in page
    from eventapp.staff.forms import event_values
    from tests.conftest import csrf_token_from
    values = event_values(event)
    values.update(capacity="2", csrf_token=csrf_token_from(page))
    response = staff_client.post(url, data=values)
    assert response.status_code == 422
    assert "定員を参加確定者数(3名)より少なくはできません。" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Event, event.id).capacity == 3


def test_publish_unpublish_and_cancel_event_notifies_everyone(ctx, staff_client):
    event = make_event(capacity=1, status="draft")
    assert post_form(staff_client, f"/staff/events/{event.id}/status", {"status": "published"}).status_code == 303
    db.session.expire_all()
    assert db.session.get(Event, event.id).status == "published"
    confirmed = make_registration(event)
    waiting = make_registration(event)
    assert waiting.status == "waitlisted"

    response = post_form(staff_client, f"/staff/events/{event.id}/cancel",
                         {"confirm_title": "違う名前", "reason": "台風のため"})
    assert "イベント名を正確に入力してください" in response.get_data(as_text=True)
    response = post_form(staff_client, f"/staff/events/{event.id}/cancel",
                         {"confirm_title": event.title, "reason": "台風接近のため中止します"})
    assert response.status_code == 303
    db.session.expire_all()
    assert db.session.get(Event, event.id).status == "cancelled"
    assert {db.session.get(Registration, r.id).status for r in (confirmed, waiting)} == {"cancelled"}
    # queued in the outbox in the same transaction as the cancellation
    mails = db.session.query(OutboxMessage).filter_by(kind="event_cancelled").all()
    assert sorted(m.to_addr for m in mails) == sorted([confirmed.person.email, waiting.person.email])
    assert all(m.subject.startswith("【開催中止】") for m in mails)
    assert "台風接近のため中止します" in mails[0].body


def test_duplicate_event_shifts_dates(ctx, staff_client):
    event = make_event(starts_at=future(10, hour=10), questions=[
        {"key": "bus", "kind": "yesno", "label": "バス"}])
    response = post_form(staff_client, f"/staff/events/{event.id}/duplicate",
                         {"title": "来年の収穫体験", "slug": "harvest-next", "mode": "days", "shift_days": "364"})
    assert response.status_code == 303
    copy = db.session.query(Event).filter_by(slug="harvest-next").one()
    assert copy.status == "draft"
    assert (copy.starts_at - event.starts_at).days == 364
    assert [q.key for q in copy.questions] == ["bus"]
    response = post_form(staff_client, f"/staff/events/{event.id}/duplicate",
                         {"title": "x", "slug": "harvest-next", "mode": "days", "shift_days": "7"})
    assert "このURL名は既に使われています。" in response.get_data(as_text=True)


def test_question_key_can_be_changed_and_a_re_added_question_is_listed_once(ctx, staff_client):
    """Issue 15, item 11: the 記号名 is editable after saving; remove + add again = one filter entry."""
    event = make_event(questions=[{"key": "q1", "kind": "yesno", "label": "送迎バスを利用しますか"},
                                  {"key": "room", "kind": "text", "label": "お部屋のご希望"}])
    registration = make_registration(event, answers={"q1": "yes"})
    url = f"/staff/events/{event.id}/questions"
    bus, room = event.active_questions
    html = staff_client.get(url).get_data(as_text=True)
    assert 'name="q-0-key" value="q1"' in html  # the key of a saved question is a field

    def save(rows: list[dict]):
        form = {}
        for n, row in enumerate(rows):
            form.update({f"q-{n}-{k}": v for k, v in row.items()})
        return post_form(staff_client, url, form, token_from=url)

    assert save([{"id": bus.id, "label": bus.label, "kind": "yesno", "key": "bus", "position": 1},
                 {"id": room.id, "label": room.label, "kind": "text", "key": "room", "position": 2}]).status_code == 303
    db.session.expire_all()
    assert db.session.get(type(bus), bus.id).key == "bus"
    # another question's key is refused with a message, nothing else changes
    refused = save([{"id": bus.id, "label": bus.label, "kind": "yesno", "key": "room"},
                    {"id": room.id, "label": room.label, "kind": "text", "key": "room"}])
    assert refused.status_code == 422 and "記号名「room」は設問「お部屋のご希望」が使っています" in refused.get_data(as_text=True)

    # remove the bus question, then add it again with the same text
    assert save([{"id": bus.id, "label": bus.label, "kind": "yesno", "key": "bus", "remove": "1"},
                 {"id": room.id, "label": room.label, "kind": "text", "key": "room"}]).status_code == 303
    assert save([{"id": room.id, "label": room.label, "kind": "text", "key": "room"},
                 {"label": "送迎バスを利用しますか", "kind": "yesno", "key": ""}]).status_code == 303
    db.session.expire_all()
    event = db.session.get(Event, event.id)
    assert [q.key for q in event.active_questions] == ["room", "bus"] and len(event.questions) == 2
    page = staff_client.get(f"/staff/events/{event.id}/participants").get_data(as_text=True)
    assert page.count(">送迎バスを利用しますか</option>") == 1 and "(削除済み)" not in page
    # the old answer is back with the revived question
    filtered = staff_client.get(f"/staff/events/{event.id}/participants?question={bus.id}&answer=yes")
    assert registration.person.name in filtered.get_data(as_text=True)


def test_event_form_sets_meeting_dismissal_and_join_url_reveal(ctx, staff_client):
    from tests.conftest import jst

    form = {"title": "北上フィールドワーク", "kind": "fieldwork", "slug": "kitakami-meeting",
            "starts_at": "2030-05-10T13:00", "ends_at": "2030-05-10T17:00", "capacity": "10", "fee_yen": "0",
            "meeting_point": "JR北上駅 東口", "meeting_at": "2030-05-10T12:00", "dismissal_at": "2030-05-10T17:30"}
    response = post_form(staff_client, "/staff/events/new", form, token_from="/staff/events/new")
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    event = db.session.query(Event).filter_by(slug="kitakami-meeting").one()
    assert (event.meeting_at, event.dismissal_at) == (jst(2030, 5, 10, 12), jst(2030, 5, 10, 17, 30))
    html = staff_client.get(f"/staff/events/{event.id}/edit").get_data(as_text=True)
    assert 'name="meeting_at"' in html and 'value="2030-05-10T12:00"' in html
    assert 'name="online_url_reveal_at"' in html


def test_event_form_chooses_calendar_alarms_or_the_kind_defaults(ctx, staff_client):
    form = {"title": "北上フィールドワーク", "kind": "fieldwork", "slug": "kitakami-alarms",
            "starts_at": "2030-05-10T13:00", "ends_at": "2030-05-10T17:00", "capacity": "10", "fee_yen": "0",
            "alarm_mode": "default", "calendar_alarms": ["1h"]}  # ticked, but the defaults are chosen
    response = post_form(staff_client, "/staff/events/new", form, token_from="/staff/events/new")
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    event = db.session.query(Event).filter_by(slug="kitakami-alarms").one()
    assert event.calendar_alarms is None
    html = staff_client.get(f"/staff/events/{event.id}/edit").get_data(as_text=True)
    assert 'name="alarm_mode" value="default" checked' in html
    ticked = re.findall(r'name="calendar_alarms" value="(\w+)"[^>]* checked', html)
    assert ticked == ["eve", "2h"]  # what the defaults are

    edit = f"/staff/events/{event.id}/edit"
    custom = {**form, "alarm_mode": "custom", "calendar_alarms": ["3d", "1h"]}
    assert post_form(staff_client, edit, custom, token_from=edit).status_code == 303
    db.session.expire_all()
    assert db.session.get(Event, event.id).calendar_alarms == ["3d", "1h"]
    too_many = {**custom, "calendar_alarms": ["1w", "3d", "eve", "1d", "1h"]}
    refused = post_form(staff_client, edit, too_many, token_from=edit)
    assert refused.status_code == 422 and "4個まで" in refused.get_data(as_text=True)
    kept = re.findall(r'name="calendar_alarms" value="(\w+)"[^>]* checked', refused.get_data(as_text=True))
    assert kept == ["1w", "3d", "eve", "1d", "1h"]  # the choice is kept for correcting
    none = {**form, "alarm_mode": "custom"}
    del none["calendar_alarms"]
    assert post_form(staff_client, edit, none, token_from=edit).status_code == 303
    db.session.expire_all()
    assert db.session.get(Event, event.id).calendar_alarms == []


def test_event_form_chooses_reminder_mails_or_the_kind_defaults(ctx, staff_client):
    form = {"title": "北上オンライン", "kind": "online_seminar", "slug": "kitakami-reminders",
            "starts_at": "2030-05-10T19:00", "ends_at": "2030-05-10T21:00", "capacity": "10", "fee_yen": "0",
            "reminder_mode": "default", "reminders": ["3d"]}  # ticked, but the defaults are chosen
    response = post_form(staff_client, "/staff/events/new", form, token_from="/staff/events/new")
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    event = db.session.query(Event).filter_by(slug="kitakami-reminders").one()
    assert event.reminders is None
    edit = f"/staff/events/{event.id}/edit"
    html = staff_client.get(edit).get_data(as_text=True)
    assert 'name="reminder_mode" value="default" checked' in html
    assert re.findall(r'name="reminders" value="(\w+)"[^>]* checked', html) == ["1d", "1h"]  # the defaults

    custom = {**form, "reminder_mode": "custom", "reminders": ["2d", "3h"]}
    assert post_form(staff_client, edit, custom, token_from=edit).status_code == 303
    db.session.expire_all()
    assert db.session.get(Event, event.id).reminders == ["2d", "3h"]
    too_many = {**custom, "reminders": ["1w", "3d", "1d", "1h"]}
    refused = post_form(staff_client, edit, too_many, token_from=edit)
    assert refused.status_code == 422 and "3個まで" in refused.get_data(as_text=True)
    kept = re.findall(r'name="reminders" value="(\w+)"[^>]* checked', refused.get_data(as_text=True))
    assert kept == ["1w", "3d", "1d", "1h"]  # the choice is kept for correcting
    none = {**form, "reminder_mode": "custom"}
    del none["reminders"]
    assert post_form(staff_client, edit, none, token_from=edit).status_code == 303
    db.session.expire_all()
    assert db.session.get(Event, event.id).reminders == []
    assert db.session.get(Event, event.id).calendar_alarms is None  # the other fieldset is left alone
