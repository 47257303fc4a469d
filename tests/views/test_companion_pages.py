"""The sign-up form with companions (no JavaScript needed), the group on the manage page, the
lead's choice between cancelling the whole group or only their own seat."""

from __future__ import annotations

from sqlalchemy import select

from eventapp.extensions import db
from eventapp.models import Registration
from tests.factories import csrf_token_from
from tests.views.test_public import Page, create_event, sign_up, token_from_redirect


def group_of(app, token: str) -> list[tuple[str, str]]:
    with app.app_context():
        lead = db.session.execute(select(Registration).where(Registration.manage_token == token)).scalar_one()
        return [(r.name, r.status) for r in (lead, *lead.companions)]


def test_form_takes_companions_in_fixed_fieldsets_and_ignores_empty_ones(app, client, sent_mail):
    slug = create_event(app, capacity=10, max_companions=3, title="家族でブドウ収穫", questions=[
        {"key": "size", "kind": "choice", "label": "軍手のサイズ", "choices": ["S", "M", "L"], "required": True}])
    html = client.get(f"/events/{slug}/register").get_data(as_text=True)
    assert html.count("<details class=\"companion card\"") == 3 and "同行者1を追加" in html
    response = sign_up(client, slug, q_size="L", companion_0_name="岩手 次郎", companion_0_furigana="いわて じろう",
                       companion_0_q_size="S", companion_2_name="岩手 三郎", companion_2_furigana="いわて さぶろう",
                       companion_2_q_size="M")
    token = token_from_redirect(response)
    group = group_of(app, token)
    assert [status for _, status in group] == ["confirmed"] * 3
    assert [name for name, _ in group[1:]] == ["岩手 次郎", "岩手 三郎"]  # slot 1 left empty: ignored
    text = Page(client.get(f"/r/{token}?new=1").get_data(as_text=True)).text
    assert "同行者" in text and "岩手 次郎" in text and "岩手 三郎" in text
    mails = sent_mail()
    body = mails[0].get_body(("plain",)).get_content()
    assert len(mails) == 1 and "岩手 次郎" in body and "岩手 三郎" in body


def test_companion_errors_show_at_the_companions_own_fields(app, client):
    slug = create_event(app, capacity=10, max_companions=2)
    response = sign_up(client, slug, companion_1_name="岩手 次郎", companion_1_furigana="jiro")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    # The second slot (the only one filled in) is open and carries the furigana message.
    assert 'id="companion_1_furigana-error"' in page
    assert "ひらがなまたはカタカナ" in page
    assert page.count("<details class=\"companion card\" open>") == 1


def test_lead_chooses_to_cancel_the_group_or_only_their_own_seat(app, client):
    slug = create_event(app, capacity=10, max_companions=2)
    token = token_from_redirect(sign_up(client, slug, companion_0_name="同行 一", companion_0_furigana="どうこう"))
    confirm = client.get(f"/r/{token}/cancel").get_data(as_text=True)
    assert 'value="group"' in confirm and 'value="self"' in confirm
    client.post(f"/r/{token}/cancel", data={"csrf_token": csrf_token_from(confirm), "scope": "self"})
    assert [status for _, status in group_of(app, token)] == ["cancelled", "confirmed"]

    token = token_from_redirect(sign_up(client, slug, companion_0_name="同行 二", companion_0_furigana="どうこう"))
    confirm = client.get(f"/r/{token}/cancel").get_data(as_text=True)
    client.post(f"/r/{token}/cancel", data={"csrf_token": csrf_token_from(confirm), "scope": "group"})
    assert [status for _, status in group_of(app, token)] == ["cancelled", "cancelled"]


def test_a_companions_manage_page_shows_only_itself_and_cancels_only_itself(app, client):
    slug = create_event(app, capacity=10, max_companions=1)
    token = token_from_redirect(sign_up(client, slug, companion_0_name="同行 一", companion_0_furigana="どうこう"))
    with app.app_context():
        lead = db.session.execute(select(Registration).where(Registration.manage_token == token)).scalar_one()
        companion_token = lead.companions[0].manage_token
    page = client.get(f"/r/{companion_token}").get_data(as_text=True)
    assert "同行者として登録されています" in page and token not in page
    confirm = client.get(f"/r/{companion_token}/cancel").get_data(as_text=True)
    assert 'value="group"' not in confirm
    client.post(f"/r/{companion_token}/cancel", data={"csrf_token": csrf_token_from(confirm), "scope": "group"})
    assert [status for _, status in group_of(app, token)] == ["confirmed", "cancelled"]


def test_staff_see_the_group_on_the_registration_and_the_participant_list(app, client):
    from tests.staff_support import login, make_user

    slug = create_event(app, capacity=10, max_companions=1)
    token = token_from_redirect(sign_up(client, slug, companion_0_name="同行 花子", companion_0_furigana="どうこう"))
    with app.app_context():
        lead = db.session.execute(select(Registration).where(Registration.manage_token == token)).scalar_one()
        lead_id, companion_id, event_id, lead_name = lead.id, lead.companions[0].id, lead.event_id, lead.name
    with app.app_context():
        email = make_user("staff").email
    login(client, email)
    page = client.get(f"/staff/registrations/{lead_id}").get_data(as_text=True)
    assert "同行者" in page and "同行 花子" in page
    page = client.get(f"/staff/registrations/{companion_id}").get_data(as_text=True)
    assert f"代表: <a href=\"/staff/registrations/{lead_id}\">{lead_name}</a>" in page
    listing = Page(client.get(f"/staff/events/{event_id}/participants").get_data(as_text=True)).text
    assert "同行 花子" in listing and "同行者" in listing


def test_staff_phone_signup_takes_companions_through_the_same_entry_point(app, client):
    from tests.staff_support import login, make_user, post_form

    with app.app_context():
        from tests.factories import make_event
        event = make_event(capacity=10, max_companions=2, questions=[
            {"key": "bus", "kind": "yesno", "label": "送迎バス", "required": True}])
        event_id = event.id
        email = make_user("staff").email
    login(client, email)
    url = f"/staff/events/{event_id}/participants/new"
    form = client.get(url).get_data(as_text=True)
    assert 'name="companions.1.furigana"' in form and 'name="companions.1.answers.bus"' in form
    base = {"name": "電話 太郎", "furigana": "でんわ たろう", "email": "phone-lead@example.com", "answers.bus": "yes"}
    # Slot 0 left empty, slot 1 with a bad furigana: the message shows at slot 1.
    bad = post_form(client, url, {**base, "companions.1.name": "電話 次郎", "companions.1.furigana": "jiro",
                                  "companions.1.answers.bus": "no"}, token_from=url)
    assert bad.status_code == 422
    page = bad.get_data(as_text=True)
    assert 'aria-describedby="companions.1.furigana-error"' in page and "ひらがなまたはカタカナ" in page
    assert 'aria-describedby="companions.0.furigana-error"' not in page
    good = post_form(client, url, {**base, "companions.1.name": "電話 次郎", "companions.1.furigana": "でんわ じろう",
                                   "companions.1.answers.bus": "no"}, token_from=url)
    assert good.status_code == 303, good.get_data(as_text=True)[:500]
    with app.app_context():
        rows = db.session.execute(select(Registration).where(Registration.event_id == event_id)
                                  .order_by(Registration.id)).scalars().all()
        assert [(r.name, r.source, r.status) for r in rows] == [("電話 太郎", "staff", "confirmed"),
                                                                ("電話 次郎", "staff", "confirmed")]
        assert rows[1].lead_registration_id == rows[0].id
        from eventapp.services.registration import answers_by_key
        assert answers_by_key(rows[1]) == {"bus": "no"}
