"""Fees API: 201 with the payment, the same nonce gives the same payment, errors as JSON, 401/403,
`payment_status` on staff registration payloads, the payment list with totals."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from eventapp.extensions import db
from eventapp.models import Payment
from eventapp.services.accounts import create_token, create_user
from tests.api.test_api import assert_error
from tests.factories import make_event, make_registration


@pytest.fixture
def tokens(app):
    values = {}
    with app.app_context():
        for role in ("checkin", "staff"):
            create_user(f"{role}@example.jp", role, "password-123", f"{role}係")
            db.session.commit()
            values[role] = create_token(f"{role}@example.jp")
            db.session.commit()
    return values


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def paid_event(app):
    with app.app_context():
        event = make_event(fee_yen=15000)
        regs = [make_registration(event).id for _ in range(2)]
        free = make_event(fee_yen=0)
        free_reg = make_registration(free).id
        return {"id": event.id, "regs": regs, "free_id": free.id, "free_reg": free_reg}


def _rows(app) -> int:
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(Payment)).scalar_one()


def test_record_cash_payment_then_same_nonce(app, client, tokens, paid_event):
    url = f"/api/v1/events/{paid_event['id']}/payments"
    body = {"registration_id": paid_event["regs"][0], "method": "cash", "amount_yen": 15000, "nonce": "door-0001"}
    first = client.post(url, json=body, headers=auth(tokens["checkin"]))
    assert first.status_code == 201, first.get_json()
    payment = first.get_json()["payment"]
    assert payment["amount_yen"] == 15000 and payment["method"] == "cash" and payment["payment_status"] == "paid"
    assert payment["receipt_number"].startswith("R20") and payment["recorded_by"] == "checkin係"
    again = client.post(url, json=body, headers=auth(tokens["checkin"]))
    assert again.status_code == 200 and again.get_json()["payment"]["id"] == payment["id"]
    assert _rows(app) == 1
    other_nonce = client.post(url, json={**body, "nonce": "door-0002"}, headers=auth(tokens["checkin"]))
    assert_error(other_nonce, 409, "already_paid")
    assert _rows(app) == 1


def test_validation_errors_are_json_with_codes(client, tokens, paid_event):
    url = f"/api/v1/events/{paid_event['id']}/payments"
    reg = paid_event["regs"][0]
    headers = auth(tokens["checkin"])
    error = assert_error(client.post(url, json={"registration_id": reg, "method": "paypal", "nonce": "door-0003"},
                                     headers=headers), 422)
    assert "method" in error["fields"]
    error = assert_error(client.post(url, json={"registration_id": reg, "amount_yen": -1, "nonce": "door-0003"},
                                     headers=headers), 422)
    assert "amount_yen" in error["fields"]
    error = assert_error(client.post(url, json={"registration_id": reg}, headers=headers), 422)
    assert "nonce" in error["fields"]
    assert_error(client.post(url, json={"registration_id": paid_event["free_reg"], "nonce": "door-0004"},
                             headers=headers), 404, "registration_not_found")
    assert_error(client.post(f"/api/v1/events/{paid_event['free_id']}/payments",
                             json={"registration_id": paid_event["free_reg"], "nonce": "door-0004"},
                             headers=headers), 409, "free_event")


def test_auth_401_and_403(client, tokens, paid_event):
    url = f"/api/v1/events/{paid_event['id']}/payments"
    body = {"registration_id": paid_event["regs"][0], "nonce": "door-0005"}
    assert_error(client.post(url, json=body), 401, "unauthorized")
    assert_error(client.post(url, json=body, headers=auth("not-a-token")), 401, "unauthorized")
    # Door staff record payments; waivers and refunds are the office's.
    assert_error(client.post(url, json={**body, "kind": "waiver"}, headers=auth(tokens["checkin"])), 403,
                 "forbidden")
    assert_error(client.get(url, headers=auth(tokens["checkin"])), 403, "forbidden")


def test_staff_payloads_carry_payment_status_and_list_has_totals(client, tokens, paid_event):
    url = f"/api/v1/events/{paid_event['id']}/payments"
    staff = auth(tokens["staff"])
    paid, waived = paid_event["regs"]
    assert client.post(url, json={"registration_id": paid, "method": "bank_transfer", "nonce": "office-001"},
                       headers=staff).status_code == 201
    assert client.post(url, json={"registration_id": waived, "kind": "waiver", "nonce": "office-002"},
                       headers=staff).status_code == 201
    listed = client.get(f"/api/v1/events/{paid_event['id']}/registrations", headers=staff).get_json()
    assert {r["id"]: r["payment_status"] for r in listed["registrations"]} == {paid: "paid", waived: "waived"}
    free = client.get(f"/api/v1/events/{paid_event['free_id']}/registrations", headers=staff).get_json()
    assert [r["payment_status"] for r in free["registrations"]] == ["none"]
    refund = client.post(url, json={"registration_id": paid, "kind": "refund", "nonce": "office-003"},
                         headers=staff)
    assert refund.status_code == 201 and refund.get_json()["payment"]["payment_status"] == "refunded"
    body = client.get(url, headers=staff).get_json()
    assert [p["kind"] for p in body["payments"]] == ["payment", "waiver", "refund"]
    assert body["totals"] == {"paid_yen": 15000, "refunded_yen": 15000, "net_yen": 0,
                              "counts": {"unpaid": 0, "paid": 0, "waived": 1, "refunded": 1}}


def test_check_in_result_and_roster_carry_fee_and_status(app, client, tokens):
    from tests.factories import make_checkin_event

    with app.app_context():
        event = make_checkin_event(fee_yen=15000)
        reg = make_registration(event)
        event_id, code, reg_id = event.id, reg.ticket_code, reg.id
    headers = auth(tokens["checkin"])
    scanned = client.post(f"/api/v1/events/{event_id}/checkins", json={"code": code, "nonce": "scan-fee-1"},
                          headers=headers).get_json()
    assert (scanned["registration"]["fee_yen"], scanned["registration"]["payment_status"]) == (15000, "unpaid")
    client.post(f"/api/v1/events/{event_id}/payments", json={"registration_id": reg_id, "nonce": "pay-fee-1"},
                headers=headers)
    roster = client.get(f"/api/v1/events/{event_id}/checkins/roster", headers=headers).get_json()
    (entry,) = roster["registrations"]
    assert (entry["fee_yen"], entry["payment_status"]) == (15000, "paid")
