"""Post-event survey (アンケート): the request mail to attendees, the answer, results per event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from ..extensions import db
from ..models import Event, OutboxMessage, Registration, SurveyResponse
from ..models.base import utcnow
from . import attendance, mail
from .errors import DomainError, NotFound, ValidationFailed
from .people import clean_text

MAIL_KIND = "survey_request"


def send_requests(event_id: int, *, now: datetime | None = None) -> int:
    """Queue the survey link to every attendee who has not been asked yet; returns how many."""
    now = now or utcnow()
    event = db.session.get(Event, event_id)
    if event is None:
        raise NotFound("event_not_found", "イベントが見つかりません。")
    if now < event.ends_at:
        raise DomainError("not_ended", "アンケートはイベント終了後に送れます。")
    reg_ids = attendance.attended_registration_ids(event_id)
    if not reg_ids:
        return 0
    asked = set(db.session.execute(select(OutboxMessage.registration_id).where(
        OutboxMessage.kind == MAIL_KIND, OutboxMessage.registration_id.in_(reg_ids))).scalars().all())
    sent = 0
    for reg in db.session.execute(select(Registration).where(Registration.id.in_(reg_ids - asked))
                                  .order_by(Registration.id)).scalars():
        if reg.person.email:
            mail.queue(MAIL_KIND, reg.person.email, MAIL_KIND,
                       {"event": event, "person": reg.person, "registration": reg}, registration=reg)
            sent += 1
    db.session.flush()
    return sent


def can_answer(registration: Registration, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return registration.status == "confirmed" and now >= registration.event.ends_at


def submit(registration: Registration, raw: dict, *, now: datetime | None = None) -> SurveyResponse:
    now = now or utcnow()
    if not can_answer(registration, now):
        raise DomainError("survey_not_open", "アンケートはイベント終了後、参加された方のみご回答いただけます。")
    errors: dict[str, str] = {}
    try:
        satisfaction = int(str(raw.get("satisfaction", "")).strip())
    except ValueError:
        satisfaction = 0
    if not 1 <= satisfaction <= 5:
        errors["satisfaction"] = "満足度を1〜5から選んでください。"
    again = str(raw.get("would_join_again", "")).strip().lower()
    if again not in ("yes", "no"):
        errors["would_join_again"] = "また参加したいかを選んでください。"
    comment = clean_text(raw.get("comment"), multiline=True)
    if len(comment) > 2000:
        errors["comment"] = "ご意見は2000文字以内で入力してください。"
    if errors:
        raise ValidationFailed(errors)
    response = response_for(registration.id)
    if response is None:
        response = SurveyResponse(registration_id=registration.id)
        db.session.add(response)
    response.satisfaction, response.would_join_again, response.comment = satisfaction, again == "yes", comment
    response.submitted_at = now
    db.session.flush()
    return response


def response_for(registration_id: int) -> SurveyResponse | None:
    return db.session.execute(select(SurveyResponse).where(SurveyResponse.registration_id == registration_id)
                              ).scalar_one_or_none()


@dataclass
class SurveyResults:
    responses: list[SurveyResponse]
    attendees: int
    average: float | None
    distribution: dict[int, int]
    would_join_again: int

    @property
    def response_rate(self) -> float | None:
        return len(self.responses) / self.attendees if self.attendees else None


def results(event_id: int) -> SurveyResults:
    responses = list(db.session.execute(
        select(SurveyResponse).join(Registration, Registration.id == SurveyResponse.registration_id)
        .where(Registration.event_id == event_id).order_by(SurveyResponse.submitted_at)).scalars().all())
    distribution = {n: sum(1 for r in responses if r.satisfaction == n) for n in range(1, 6)}
    average = sum(r.satisfaction for r in responses) / len(responses) if responses else None
    return SurveyResults(responses, len(attendance.attended_registration_ids(event_id)), average, distribution,
                         sum(1 for r in responses if r.would_join_again))


def send_due(*, within: timedelta = timedelta(days=3), now: datetime | None = None) -> int:
    """For cron: survey requests for every published event that ended within `within` (once per person)."""
    now = now or utcnow()
    events = db.session.execute(select(Event.id).where(
        Event.status == "published", Event.ends_at <= now, Event.ends_at > now - within)).scalars().all()
    return sum(send_requests(event_id, now=now) for event_id in events)
