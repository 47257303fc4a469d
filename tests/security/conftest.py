"""Fixtures for the security tests: the demo data set (every kind of object exists) and its ids."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from eventapp.extensions import db
from eventapp.models.base import utcnow
from tests.staff_support import make_user


@pytest.fixture
def demo_ids(app) -> dict:
    """Load the demo data and return real ids and tokens for building every URL of the app."""
    from eventapp.demo import load_demo_data
    from eventapp.models import CheckIn, Event, Invitation, Organisation, Registration
    from eventapp.services import checkin as checkin_service

    with app.app_context():
        load_demo_data()
        db.session.commit()
        fieldwork = db.session.execute(
            select(Event).join(Registration).where(Event.kind == "fieldwork")  # has QR tickets (online has none)
            .order_by(Event.id)).scalars().first()
        matching = db.session.execute(select(Event).where(Event.kind == "matching_session")
                                      .order_by(Event.id)).scalars().first()
        # A past demo event: staff opened its check-in window around now, so the door's pages answer.
        fieldwork.checkin_opens_at, fieldwork.checkin_closes_at = utcnow() - timedelta(days=1), utcnow() + timedelta(days=1)
        db.session.commit()
        registration = db.session.execute(select(Registration).where(Registration.event_id == fieldwork.id)
                                          .order_by(Registration.id)).scalars().first()
        invitation = db.session.execute(select(Invitation).order_by(Invitation.id)).scalars().first()
        if invitation is None:
            from eventapp.services.matching import grant_override
            invitation = grant_override(matching.id, registration.person.email)
            db.session.commit()
        organisation = db.session.execute(select(Organisation).order_by(Organisation.id)).scalars().first()
        spare = make_user("staff")  # the target of account actions
        checkin = db.session.execute(select(CheckIn).order_by(CheckIn.id)).scalars().first()
        if checkin is None:
            checkin_service.check_in(fieldwork.id, None, "security-test-1", registration_id=registration.id,
                                     user=make_user("admin"), now=fieldwork.starts_at + timedelta(hours=1))
            db.session.commit()
            checkin = db.session.execute(select(CheckIn).order_by(CheckIn.id)).scalars().first()
        from eventapp.models import StaffMail  # a draft, for the staff mail pages
        staff_mail = StaffMail(event_id=fieldwork.id, subject="{event_title}のお知らせ", body="{name} 様",
                               audience="confirmed", status="draft")
        db.session.add(staff_mail)
        db.session.commit()
        from eventapp.models import Payment
        payment = db.session.execute(select(Payment).order_by(Payment.id)).scalars().first()
        if payment is None:  # a paid fee, so the receipt routes have a real payment id
            payment = Payment(registration_id=registration.id, kind="payment", method="cash",
                              amount_yen=fieldwork.fee_yen, paid_at=utcnow(), nonce="security-payment-1",
                              receipt_number="R2026-900001", receipt_name=registration.name)
            db.session.add(payment)
            db.session.commit()
        my_email = registration.person.email
        my_link_token = mailed_my_link(my_email)
        from eventapp.models import OutboxMessage
        message_id = db.session.execute(select(OutboxMessage.id).order_by(OutboxMessage.id)).scalars().first()
        from eventapp.services import announcements
        unsubscribe_token = announcements.set_from_mypage(registration.person, True).unsubscribe_token
        opt_in_token = announcements._serializer().dumps(
            {"p": registration.person_id, "e": my_email, "r": registration.id})
        db.session.commit()
        return {
            "mail_id": staff_mail.id,
            "unsubscribe_token": unsubscribe_token, "opt_in_token": opt_in_token,
            "my_email": my_email, "my_link_token": my_link_token, "fmt": "json", "message_id": message_id,
            "event_id": fieldwork.id, "matching_event_id": matching.id, "slug": fieldwork.slug,
            "registration_id": registration.id, "person_id": registration.person_id,
            "token": registration.manage_token, "manage_token": registration.manage_token,
            "calendar_token": registration.person.calendar_token,
            "invitation_token": invitation.token,
            "organisation_id": organisation.id, "user_id": spare.id, "checkin_id": checkin.id,
            "payment_id": payment.id,
            "year": fieldwork.starts_at.year if fieldwork.starts_at.month >= 4 else fieldwork.starts_at.year - 1,
            "kind": fieldwork.kind, "filename": "css/app.css",
        }


def mailed_my_link(email: str) -> str:
    """A fresh, unused マイページ sign-in token for the address, as read from its mail."""
    import re

    from eventapp.models import OutboxMessage
    from eventapp.services.mypage import request_link

    request_link(email)
    db.session.commit()
    body = db.session.execute(select(OutboxMessage.body).where(OutboxMessage.kind == "my_page_link")
                              .order_by(OutboxMessage.id.desc())).scalars().first()
    return re.search(r"/my/([A-Za-z0-9_-]{43})", body).group(1)


def sign_in_mypage(app, client, email: str) -> None:
    """Sign the client into マイページ with a link of its own (so the walk can GET every /my page)."""
    from tests.factories import csrf_token_from
    with app.app_context():
        token = mailed_my_link(email)
    page = client.get(f"/my/{token}")
    response = client.post(f"/my/{token}", data={"csrf_token": csrf_token_from(page.get_data(as_text=True))})
    assert response.status_code == 303, response.status_code


def url_values(rule, ids: dict) -> dict:
    """The ids a rule needs, choosing the matching session for matching pages and the right kind of token."""
    values = dict(ids)
    if rule.rule.startswith(("/staff/matching", "/staff/attendance")):
        values["event_id"] = ids["matching_event_id"]
    if rule.rule.startswith("/invite/"):
        values["token"] = ids["invitation_token"]
    if rule.rule.startswith("/feeds/person/"):
        values["token"] = ids["calendar_token"]
    if rule.rule.startswith("/my/"):
        values["token"] = ids["my_link_token"]
    if rule.rule.startswith("/announcements/unsubscribe/"):
        values["token"] = ids["unsubscribe_token"]
    if rule.rule.startswith("/announcements/confirm/"):
        values["token"] = ids["opt_in_token"]
    return values
