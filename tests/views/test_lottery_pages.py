"""抽選 on the staff pages (event form, 今すぐ抽選する) and the public pages (notice, applied status)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from eventapp.extensions import db
from eventapp.models import Event, Registration
from tests.conftest import future, make_event, make_registration
from tests.staff_support import login, make_user, post_form


@pytest.fixture
def staff_client(app, client):
    with app.app_context():
        user = make_user("staff")
        login(client, user.email)
    return client


def test_event_form_makes_a_lottery_and_checks_the_draw_time(ctx, staff_client):
    form = {"title": "夏油温泉フィールドワーク", "kind": "fieldwork", "slug": "geto-lottery",
            "starts_at": "2030-05-10T09:00", "ends_at": "2030-05-10T17:00", "capacity": "15", "fee_yen": "15000",
            "allocation": "lottery", "lottery_losers": "not_selected", "lottery_draw_at": ""}
    refused = post_form(staff_client, "/staff/events/new", form, token_from="/staff/events/new")
    assert refused.status_code == 422 and "抽選日時を入力してください" in refused.get_data(as_text=True)
    late = {**form, "lottery_draw_at": "2030-05-11T09:00"}
    refused = post_form(staff_client, "/staff/events/new", late, token_from="/staff/events/new")
    assert refused.status_code == 422 and "イベント開始より前" in refused.get_data(as_text=True)
    good = {**form, "lottery_draw_at": "2030-04-20T12:00"}
    response = post_form(staff_client, "/staff/events/new", good, token_from="/staff/events/new")
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    event = db.session.execute(select(Event).where(Event.slug == "geto-lottery")).scalar_one()
    assert (event.allocation, event.lottery_losers) == ("lottery", "not_selected")
    assert event.lottery_draw_at.isoformat().startswith("2030-04-20T03:00")  # 12:00 JST
    html = staff_client.get(f"/staff/events/{event.id}/edit").get_data(as_text=True)
    assert 'name="allocation" value="lottery" checked' in html and 'value="2030-04-20T12:00"' in html


def test_staff_draw_button_draws_once(ctx, staff_client):
    starts = future(30)
    event = make_event(allocation="lottery", lottery_draw_at=starts - timedelta(days=7), starts_at=starts,
                       ends_at=starts + timedelta(hours=4), capacity=1)
    make_registration(event), make_registration(event)
    page = staff_client.get(f"/staff/events/{event.id}").get_data(as_text=True)
    assert "今すぐ抽選する" in page and "応募者(抽選前) <strong>2</strong>" in page
    url = f"/staff/events/{event.id}/draw"
    first = post_form(staff_client, url, token_from=f"/staff/events/{event.id}", follow_redirects=True)
    assert "当選1名、キャンセル待ち1名" in first.get_data(as_text=True)
    second = post_form(staff_client, url, token_from=f"/staff/events/{event.id}", follow_redirects=True)
    assert "既に行われています" in second.get_data(as_text=True)
    statuses = sorted(db.session.execute(select(Registration.status).where(Registration.event_id == event.id))
                      .scalars())
    assert statuses == ["confirmed", "waitlisted"]


def test_public_pages_say_it_is_a_lottery(ctx, client):
    starts = future(30)
    event = make_event(allocation="lottery", lottery_draw_at=starts - timedelta(days=7), starts_at=starts,
                       ends_at=starts + timedelta(hours=4), capacity=1)
    assert "抽選に申し込む" in client.get(f"/events/{event.slug}").get_data(as_text=True)
    assert "このイベントは抽選です" in client.get(f"/events/{event.slug}/register").get_data(as_text=True)
    registration = make_registration(event)
    html = client.get(f"/r/{registration.manage_token}?new=1").get_data(as_text=True)
    assert "抽選のお申し込みを受け付けました。" in html and "抽選応募中" in html
    assert 'class="qr"' not in html  # no ticket before the draw


def test_staff_give_an_application_the_priority_round(ctx, staff_client):
    starts = future(30)
    event = make_event(allocation="lottery", lottery_draw_at=starts - timedelta(days=7), starts_at=starts,
                       ends_at=starts + timedelta(hours=4), capacity=1)
    others = [make_registration(event) for _ in range(3)]
    favoured = make_registration(event)
    page = f"/staff/registrations/{favoured.id}"
    assert "優先枠を付ける" in staff_client.get(page).get_data(as_text=True)
    response = post_form(staff_client, f"{page}/lottery-priority", {"priority": "1"}, token_from=page)
    assert response.status_code == 303
    db.session.expire_all()
    assert db.session.get(Registration, favoured.id).lottery_priority is True
    assert post_form(staff_client, f"/staff/events/{event.id}/draw", token_from=f"/staff/events/{event.id}"
                     ).status_code == 303
    db.session.expire_all()
    assert db.session.get(Registration, favoured.id).status == "confirmed"
    assert {db.session.get(Registration, r.id).status for r in others} == {"waitlisted"}
    refused = post_form(staff_client, f"{page}/lottery-priority", {"priority": "0"}, token_from=page,
                        follow_redirects=True)
    assert "既に行われています" in refused.get_data(as_text=True)
