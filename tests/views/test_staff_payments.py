"""Staff fee pages: record, waive and refund on the registration page (one row per form nonce),
the 宛名 and reissue, the participant list's status column, the event page's counts, the payment list
and its exports with totals."""

from __future__ import annotations

import csv
import io
import re

from sqlalchemy import func, select

from eventapp.extensions import db
from eventapp.models import Payment
from tests.factories import make_event, make_registration
from tests.pdf_support import pdf_text
from tests.staff_support import login, make_user, post_form


def _setup(app, client):
    with app.app_context():
        staff = make_user("staff", name="事務 花子")
        event = make_event(fee_yen=15000, title="夏油温泉フィールドワーク")
        regs = [make_registration(event, name=f"岩手 {n}") for n in ("一郎", "二郎")]
        ids = {"event": event.id, "regs": [r.id for r in regs]}
        email = staff.email
    login(client, email)
    return ids


def _nonce(html: str) -> str:
    return re.search(r'name="nonce" value="([^"]+)"', html).group(1)


def _rows(app) -> int:
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(Payment)).scalar_one()


def test_record_transfer_rename_reissue_and_refund(app, client):
    ids = _setup(app, client)
    reg = ids["regs"][0]
    page_url = f"/staff/registrations/{reg}"
    page = client.get(page_url).get_data(as_text=True)
    assert "参加費 15,000円" in page and "未払い" in page
    form = {"nonce": _nonce(page), "kind": "payment", "method": "bank_transfer", "amount_yen": "15000"}
    for _ in range(2):  # a double submit of the same form records one payment
        assert post_form(client, f"/staff/registrations/{reg}/payments", form, token_from=page_url).status_code == 303
    assert _rows(app) == 1
    page = client.get(page_url).get_data(as_text=True)
    assert "支払済み" in page and "銀行振込" in page and "事務 花子" in page
    with app.app_context():
        payment_id = db.session.execute(select(Payment.id)).scalar_one()
    post_form(client, f"/staff/registrations/{reg}/payments/{payment_id}/receipt-name",
              {"receipt_name": "株式会社いわて"}, token_from=page_url)
    post_form(client, f"/staff/registrations/{reg}/payments/{payment_id}/reissue", {}, token_from=page_url)
    pdf = client.get(f"/staff/registrations/{reg}/payments/{payment_id}/receipt.pdf")
    assert pdf.status_code == 200
    text = pdf_text(pdf.data)
    assert "株式会社いわて" in text and "再発行" in text
    page = client.get(page_url).get_data(as_text=True)
    post_form(client, f"/staff/registrations/{reg}/payments",
              {"nonce": _nonce(page), "kind": "refund", "method": "bank_transfer"}, token_from=page_url)
    assert "返金済み" in client.get(page_url).get_data(as_text=True)
    assert _rows(app) == 2


def test_list_counts_and_exports(app, client):
    ids = _setup(app, client)
    paid, waived = ids["regs"]
    for reg, kind in ((paid, "payment"), (waived, "waiver")):
        page_url = f"/staff/registrations/{reg}"
        page = client.get(page_url).get_data(as_text=True)
        nonce = _nonce(page) + ("-w" if kind == "waiver" else "")
        post_form(client, f"/staff/registrations/{reg}/payments", {"nonce": nonce, "kind": kind, "method": "cash"},
                  token_from=page_url)
    participants = client.get(f"/staff/events/{ids['event']}/participants").get_data(as_text=True)
    assert "<th>参加費</th>" in participants and "支払済み" in participants and "免除" in participants
    detail = client.get(f"/staff/events/{ids['event']}").get_data(as_text=True)
    stat = re.search(r'data-testid="fee-stat".*?</div>', detail, re.S).group(0)
    assert "1 <small>/ 0</small>" in stat and "免除 1" in stat
    listing = client.get(f"/staff/events/{ids['event']}/payments").get_data(as_text=True)
    assert re.search(r'data-testid="net-total">15,000円', listing)
    export_url = f"/staff/events/{ids['event']}/payments/export"
    response = post_form(client, export_url, {"format": "csv"}, token_from=f"/staff/events/{ids['event']}/payments")
    assert response.status_code == 200 and response.data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert rows[-1][2] == "合計(支払−返金)" and rows[-1][6] == "15000"
    xlsx = post_form(client, export_url, {"format": "xlsx"}, token_from=f"/staff/events/{ids['event']}/payments")
    assert xlsx.status_code == 200 and xlsx.data[:2] == b"PK"


def test_door_role_cannot_use_staff_fee_pages(app, client):
    with app.app_context():
        door = make_user("checkin")
        event = make_event(fee_yen=3000)
        reg = make_registration(event).id
        event_id, email = event.id, door.email
    login(client, email)
    assert client.get(f"/staff/events/{event_id}/payments").status_code in (302, 303, 403)
    response = post_form(client, f"/staff/registrations/{reg}/payments", {"nonce": "door-nonce-x"},
                         token_from="/checkin/")
    assert response.status_code in (302, 303, 403)
    assert _rows(app) == 0
