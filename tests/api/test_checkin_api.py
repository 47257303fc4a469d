"""Check-in API: status codes, the error format, idempotency, undo, roster, batch and auth."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from eventapp.extensions import db
from eventapp.models import CheckIn
from eventapp.models.base import utcnow
from eventapp.services.accounts import create_token, create_user
from eventapp.services.checkin import code_hash
from tests.conftest import future
from tests.factories import make_checkin_event, make_registration


@pytest.fixture
def token(app):
    with app.app_context():
        create_user("tanaka@example.jp", "checkin", "password-123", "田中")
        db.session.commit()
        value = create_token("tanaka@example.jp")
        db.session.commit()
    return value


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _checkins(app) -> int:
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(CheckIn)).scalar_one()


def test_check_in_and_second_scan(app, client, token):
    with app.app_context():
        event = make_checkin_event()
        reg = make_registration(event, name="山田 太郎", furigana="やまだ たろう")
        event_id, code = event.id, reg.ticket_code
    url = f"/api/v1/events/{event_id}/checkins"
    first = client.post(url, json={"code": code, "nonce": "api-nonce-1"}, headers=auth(token))
    assert first.status_code == 200, first.get_json()
    body = first.get_json()
    assert body["result"] == "checked_in"
    assert body["registration"]["name"] == "山田 太郎" and body["registration"]["furigana"] == "やまだ たろう"
    assert body["checked_in_at"].endswith("+09:00")
    assert first.headers["Server-Timing"].startswith("app;dur=")
    retry = client.post(url, json={"code": code, "nonce": "api-nonce-1"}, headers=auth(token))
    assert retry.get_json()["checkin_id"] == body["checkin_id"] and retry.get_json()["result"] == "checked_in"
    second = client.post(url, json={"code": code, "nonce": "api-nonce-2"}, headers=auth(token)).get_json()
    assert second["result"] == "already_checked_in"
    assert second["by"] == "田中" and second["message"].startswith("受付済み")
    assert _checkins(app) == 1


def test_check_in_result_shows_answer_labels_and_marks_the_important_ones(app, client, token):
    """yes/no answers read はい/いいえ; the dietary answer and a question staff flagged 重要 are
    marked and listed under important_answers (the door must not miss an allergy)."""
    with app.app_context():
        # Tomorrow (inside the check-in window, still open for sign-ups at any hour of the test run).
        event = make_checkin_event(starts_at=future(1, hour=13), questions=[
            {"key": "bus", "kind": "yesno", "label": "送迎バス"},
            {"key": "dietary", "kind": "text", "label": "食物アレルギー"},
            {"key": "wheelchair", "kind": "yesno", "label": "車椅子", "important": True},
            {"key": "memo", "kind": "text", "label": "ひとこと"}])
        reg = make_registration(event, answers={"bus": "yes", "dietary": "そば", "wheelchair": "no", "memo": ""})
        event_id, code = event.id, reg.ticket_code
    body = client.post(f"/api/v1/events/{event_id}/checkins", json={"code": code, "nonce": "important-1"},
                       headers=auth(token)).get_json()
    assert body.get("result") == "checked_in", body
    registration = body["registration"]
    assert registration["notes"] == [
        {"label": "送迎バス", "value": "はい", "important": False},
        {"label": "食物アレルギー", "value": "そば", "important": True},
        {"label": "車椅子", "value": "いいえ", "important": True}]  # the empty answer is left out
    assert registration["important_answers"] == registration["notes"][1:]
    assert "yes" not in str(body) and "'no'" not in str(body)


def test_error_codes(app, client, token):
    with app.app_context():
        event, other = make_checkin_event(capacity=1), make_checkin_event()
        make_registration(event)
        waiting = make_registration(event)
        elsewhere = make_registration(other)
        from eventapp.services.tickets import make_ticket_code
        cases = {
            "waitlisted": (waiting.ticket_code, 409),
            "wrong_event": (elsewhere.ticket_code, 409),
            "invalid_signature": (waiting.ticket_code[:-2] + "AA", 409),
            "unknown_code": (make_ticket_code(event.id), 404),
        }
        event_id = event.id
    for code_name, (code, status) in cases.items():
        response = client.post(f"/api/v1/events/{event_id}/checkins", json={"code": code, "nonce": f"n-{code_name}"},
                               headers=auth(token))
        assert response.status_code == status, (code_name, response.get_json())
        error = response.get_json()["error"]
        assert error["code"] == code_name and error["message"]
    bad = client.post(f"/api/v1/events/{event_id}/checkins", json={"nonce": "short"}, headers=auth(token))
    assert bad.status_code == 422 and "nonce" in bad.get_json()["error"]["fields"]
    missing = client.post(f"/api/v1/events/{event_id}/checkins", json={"nonce": "long-enough-nonce"},
                          headers=auth(token))
    assert missing.status_code == 422 and "code" in missing.get_json()["error"]["fields"]
    assert _checkins(app) == 0


def test_cancelled_is_409(app, client, token):
    with app.app_context():
        event = make_checkin_event()
        reg = make_registration(event)
        from eventapp.services.registration import cancel
        cancel(reg.id, by="staff")
        db.session.commit()
        event_id, code = event.id, reg.ticket_code
    response = client.post(f"/api/v1/events/{event_id}/checkins", json={"code": code, "nonce": "n-cancelled"},
                           headers=auth(token))
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "cancelled"


def test_auth_required_and_participant_session_is_not_enough(app, client):
    with app.app_context():
        event = make_checkin_event()
        reg = make_registration(event)
        event_id, code = event.id, reg.ticket_code
    response = client.post(f"/api/v1/events/{event_id}/checkins", json={"code": code, "nonce": "n-noauth"})
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthorized"
    response = client.get(f"/api/v1/events/{event_id}/checkins/roster",
                          headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401


def test_undo_roster_stats_and_manual_check_in(app, client, token):
    with app.app_context():
        event = make_checkin_event()
        reg = make_registration(event, phone="080-1111-2222")
        event_id, code, reg_id = event.id, reg.ticket_code, reg.id
    manual = client.post(f"/api/v1/events/{event_id}/checkins", json={"registration_id": reg_id, "nonce": "manual-1"},
                         headers=auth(token)).get_json()
    assert manual["result"] == "checked_in"
    stats = client.get(f"/api/v1/events/{event_id}/checkins", headers=auth(token)).get_json()
    assert stats["checked_in"] == 1 and stats["confirmed"] == 1 and stats["recent"][0]["id"] == manual["checkin_id"]
    roster = client.get(f"/api/v1/events/{event_id}/checkins/roster", headers=auth(token)).get_json()
    assert roster["registrations"][0]["code_hash"] == code_hash(code)
    assert roster["registrations"][0]["checkins"][0]["id"] == manual["checkin_id"]
    assert code not in str(roster)

    undo = client.delete(f"/api/v1/events/{event_id}/checkins/{manual['checkin_id']}", headers=auth(token))
    assert undo.status_code == 200 and undo.get_json()["undone_at"]
    again = client.delete(f"/api/v1/events/{event_id}/checkins/{manual['checkin_id']}", headers=auth(token))
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "already_undone"
    assert client.get(f"/api/v1/events/{event_id}/checkins", headers=auth(token)).get_json()["checked_in"] == 0
    missing = client.delete(f"/api/v1/events/{event_id}/checkins/999999", headers=auth(token))
    assert missing.status_code == 404


def test_batch_keeps_original_times(app, client, token):
    with app.app_context():
        event = make_checkin_event()
        regs = [make_registration(event) for _ in range(3)]
        event_id, codes = event.id, [r.ticket_code for r in regs]
    base = utcnow() - timedelta(minutes=30)
    scans = [{"code": c, "nonce": f"batch-{i}-xyz", "scanned_at": (base + timedelta(minutes=i)).isoformat()}
             for i, c in enumerate(codes)]
    scans.append({"code": codes[0], "nonce": "batch-dup-xyz", "scanned_at": (base + timedelta(minutes=9)).isoformat()})
    response = client.post(f"/api/v1/events/{event_id}/checkins/batch", json={"device_id": "tablet-1", "scans": scans},
                           headers=auth(token))
    assert response.status_code == 200, response.get_json()
    results = response.get_json()["results"]
    assert [r["result"] for r in results] == ["checked_in", "checked_in", "checked_in", "duplicate"]
    with app.app_context():
        rows = db.session.execute(select(CheckIn).where(CheckIn.duplicate_of_id.is_(None))
                                  .order_by(CheckIn.checked_in_at)).scalars().all()
        assert [r.checked_in_at.replace(microsecond=0) for r in rows] == [
            (base + timedelta(minutes=i)).replace(microsecond=0) for i in range(3)]
        assert {r.device_id for r in rows} == {"tablet-1"}


def test_walk_in(app, client, token):
    with app.app_context():
        event = make_checkin_event(capacity=0)
        event_id = event.id
    response = client.post(f"/api/v1/events/{event_id}/walkins", json={
        "name": "当日 花子", "furigana": "とうじつ はなこ", "email": "walkin@example.com", "nonce": "walkin-api-1"},
        headers=auth(token))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["result"] == "checked_in" and body["over_capacity"] is True
    assert body["registration"]["source"] == "walkin"
    invalid = client.post(f"/api/v1/events/{event_id}/walkins", json={
        "name": "", "furigana": "abc", "email": "x", "nonce": "walkin-api-2"}, headers=auth(token))
    assert invalid.status_code == 422
    assert {"name", "furigana", "email"} <= set(invalid.get_json()["error"]["fields"])
    # At the door an address is optional (the person simply gets no confirmation mail).
    no_email = client.post(f"/api/v1/events/{event_id}/walkins", json={
        "name": "当日 次郎", "furigana": "とうじつ じろう", "nonce": "walkin-api-3"}, headers=auth(token))
    assert no_email.status_code == 200, no_email.get_json()
    assert no_email.get_json()["result"] == "checked_in"


def test_openapi_lists_checkin_paths(client):
    spec = client.get("/api/v1/openapi.json")
    assert spec.status_code == 200
    paths = spec.get_json()["paths"]
    assert "/api/v1/events/{event_id}/checkins" in paths
    assert "/api/v1/events/{event_id}/checkins/batch" in paths


def test_walk_in_with_a_known_address_changes_no_person_and_mails_only_when_ticked(app, client, token):
    from eventapp.models import OutboxMessage, Person, Registration

    with app.app_context():
        event = make_checkin_event()
        known = make_registration(make_checkin_event(), email="victim@example.jp", name="本人 花子",
                                  furigana="ほんにん はなこ", phone="090-1111-2222")
        event_id, person_id = event.id, known.person_id
        mails_before = db.session.execute(select(func.count()).select_from(OutboxMessage)).scalar_one()
    url = f"/api/v1/events/{event_id}/walkins"
    response = client.post(url, json={"name": "別人 太郎", "furigana": "べつじん たろう", "email": "victim@example.jp",
                                      "phone": "080-9999-0000", "nonce": "walkin-identity-1"}, headers=auth(token))
    assert response.status_code == 200, response.get_json()
    with app.app_context():
        person = db.session.get(Person, person_id)
        assert (person.name, person.furigana, person.phone) == ("本人 花子", "ほんにん はなこ", "090-1111-2222")
        reg = db.session.get(Registration, response.get_json()["registration"]["id"])
        assert reg.person_id == person_id and (reg.name, reg.phone) == ("別人 太郎", "080-9999-0000")
        assert db.session.execute(select(func.count()).select_from(OutboxMessage)).scalar_one() == mails_before
    # Ticked "確認メールを送る": the confirmation goes to the address given.
    with app.app_context():
        other_id = make_checkin_event().id
    response = client.post(f"/api/v1/events/{other_id}/walkins", json={
        "name": "当日 花子", "furigana": "とうじつ はなこ", "email": "walkin-mail@example.jp", "send_mail": True,
        "nonce": "walkin-identity-2"}, headers=auth(token))
    assert response.status_code == 200, response.get_json()
    with app.app_context():
        rows = db.session.execute(select(OutboxMessage).where(OutboxMessage.to_addr == "walkin-mail@example.jp")
                                  ).scalars().all()
        assert [r.kind for r in rows] == ["registration_confirmed"]


def _full_width(text: str) -> str:
    return "".join("－" if ch == "-" else chr(ord(ch) + 0xFEE0) for ch in text)


def test_scanner_and_ime_input_is_normalised(app, client, token):
    """Full-width IME input, a scanner's ]Q1 prefix and CR/LF, or the manage-page URL all check in;
    text not shaped like a code is 422 not_a_ticket; only a well-formed code with a bad HMAC is a forgery."""
    with app.app_context():
        event = make_checkin_event()
        regs = [make_registration(event) for _ in range(3)]
        event_id = event.id
        codes = [r.ticket_code for r in regs]
        manage_url = f"https://events.example.jp/r/{regs[2].manage_token}"
    inputs = [_full_width(codes[0]), f"]Q1{codes[1].lower()}\r\n", manage_url]
    for n, (text, reg) in enumerate(zip(inputs, regs, strict=True)):
        response = client.post(f"/api/v1/events/{event_id}/checkins", json={"code": text, "nonce": f"norm-{n}-0000"},
                               headers=auth(token))
        assert response.status_code == 200, (text, response.get_json())
        assert response.get_json()["result"] == "checked_in" and response.get_json()["registration"]["id"] == reg.id
    assert _checkins(app) == 3
    for text in ("hello", "https://example.jp/", "ＡＢＣ"):
        response = client.post(f"/api/v1/events/{event_id}/checkins", json={"code": text, "nonce": "norm-bad-000"},
                               headers=auth(token))
        assert response.status_code == 422, response.get_json()
        error = response.get_json()["error"]
        assert error["code"] == "not_a_ticket" and error["message"] == "チケットのQRコードではありません。"
    altered = codes[0][:-1] + ("A" if codes[0][-1] != "A" else "B")
    response = client.post(f"/api/v1/events/{event_id}/checkins",
                           json={"code": _full_width(altered), "nonce": "norm-forged-0"}, headers=auth(token))
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "invalid_signature"
    batch = client.post(f"/api/v1/events/{event_id}/checkins/batch", headers=auth(token), json={"scans": [
        {"code": "not a code", "nonce": "batch-bad-000", "scanned_at": utcnow().isoformat()}]})
    assert batch.status_code == 200
    assert batch.get_json()["results"][0]["error"]["code"] == "not_a_ticket"
    assert _checkins(app) == 3


def test_walk_in_may_leave_required_questions_empty_and_undo_can_cancel_it(app, client, token):
    """Issue 15 item 1: required questions never block the door; undo with cancel_walkin cancels the walk-in."""
    from eventapp.models import Registration

    questions = [{"key": "bus", "kind": "yesno", "label": "バスを利用しますか", "required": True},
                 {"key": "dietary", "kind": "text", "label": "食事の配慮", "required": True}]
    with app.app_context():
        event = make_checkin_event(questions=questions)
        scanned = make_registration(event, answers={"bus": "yes", "dietary": "なし"})
        event_id, scanned_code = event.id, scanned.ticket_code
    url = f"/api/v1/events/{event_id}/walkins"
    empty = client.post(url, json={"name": "当日 花子", "furigana": "とうじつ はなこ", "nonce": "walkin-q-0001"},
                        headers=auth(token))
    assert empty.status_code == 200, empty.get_json()
    partly = client.post(url, json={"name": "当日 次郎", "furigana": "とうじつ じろう", "nonce": "walkin-q-0002",
                                    "answers": {"bus": "yes", "dietary": ""}}, headers=auth(token))
    assert partly.status_code == 200, partly.get_json()
    # Given answers are still validated.
    wrong = client.post(url, json={"name": "当日 三郎", "furigana": "とうじつ さぶろう", "nonce": "walkin-q-0003",
                                   "answers": {"bus": "maybe"}}, headers=auth(token))
    assert wrong.status_code == 422 and "answers.bus" in wrong.get_json()["error"]["fields"]
    with app.app_context():
        first = db.session.get(Registration, empty.get_json()["registration"]["id"])
        second = db.session.get(Registration, partly.get_json()["registration"]["id"])
        assert first.status == "confirmed" and first.answers == []
        assert [(a.question.key, a.value) for a in second.answers] == [("bus", "yes")]
    # Undo without the flag keeps the registration; with it, the walk-in is cancelled.
    undo = client.delete(f"/api/v1/events/{event_id}/checkins/{empty.get_json()['checkin_id']}", headers=auth(token))
    assert undo.status_code == 200, undo.get_json()
    assert undo.get_json()["registration"]["status"] == "confirmed"
    undo2 = client.delete(f"/api/v1/events/{event_id}/checkins/{partly.get_json()['checkin_id']}",
                          json={"cancel_walkin": True}, headers=auth(token))
    assert undo2.status_code == 200, undo2.get_json()
    assert undo2.get_json()["registration"]["status"] == "cancelled"
    # A pre-registered participant's check-in cannot cancel their registration through the door.
    normal = client.post(f"/api/v1/events/{event_id}/checkins", json={"code": scanned_code, "nonce": "walkin-q-0004"},
                         headers=auth(token))
    refused = client.delete(f"/api/v1/events/{event_id}/checkins/{normal.get_json()['checkin_id']}",
                            json={"cancel_walkin": True}, headers=auth(token))
    assert refused.status_code == 422 and refused.get_json()["error"]["code"] == "not_walkin"
    with app.app_context():
        assert db.session.get(Registration, first.id).status == "confirmed"
        assert db.session.get(Registration, second.id).status == "cancelled"
        assert db.session.get(Registration, scanned.id).status == "confirmed"
        # The refused undo changed nothing: the participant's check-in is still active.
        assert db.session.get(CheckIn, normal.get_json()["checkin_id"]).undone_at is None
