"""A registration for an event, with its attendee's details and answers to the event's questions.

The attendee (name, furigana, phone, …) belongs to the registration as given at sign-up: the
person row is only the contact identity (the mailbox), so a sign-up for one attendee never changes
what another registration of the same address shows or prints."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, event, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import UTCDateTime, utcnow
from .person import IWATE_RELATIONS, keep_search_keys, trigram_index

# applied: an application to a lottery not yet drawn (no seat, not waiting); not_selected: the
# lottery's draw did not pick it and the event gives no waiting list.
REGISTRATION_STATUSES = ("confirmed", "waitlisted", "cancelled", "applied", "not_selected")
ACTIVE_STATUSES = ("confirmed", "waitlisted", "applied")
CONSENT_LANGUAGES = ("ja", "en")
# Per-registration attendee details (the same names as the person's contact fields).
# Languages a participant can sign up in (`?lang=en`); their mails are written in it.
MAIL_LOCALES = ("ja", "en")
ATTENDEE_FIELDS = ("name", "furigana", "phone", "prefecture", "iwate_relation", "occupation", "skills")


class Registration(db.Model):
    __tablename__ = "registrations"
    __table_args__ = (
        CheckConstraint(f"status IN {REGISTRATION_STATUSES}", name="status_valid"),
        CheckConstraint("status != 'waitlisted' OR waitlisted_at IS NOT NULL", name="waitlist_has_time"),
        CheckConstraint("status != 'confirmed' OR confirmed_at IS NOT NULL", name="confirmed_has_time"),
        CheckConstraint(f"iwate_relation IN {IWATE_RELATIONS}", name="iwate_relation_valid"),
        CheckConstraint(f"consent_language IN {CONSENT_LANGUAGES}", name="consent_language_valid"),
        CheckConstraint(f"locale IN {MAIL_LOCALES}", name="locale_valid"),
        # One active registration per person and event, whatever the Python code does.
        Index(
            "uq_registrations_active_person_event", "event_id", "person_id", unique=True,
            sqlite_where=text("status != 'cancelled'"), postgresql_where=text("status != 'cancelled'"),
        ),
        Index("ix_registrations_event_status", "event_id", "status"),
        trigram_index("ix_registrations_search_name", "search_name"),
        trigram_index("ix_registrations_search_phone", "search_phone"),
        # Covering (see Person): a short search reads this index only, not the wide rows (180 → 30 ms at 200,000).
        Index("ix_registrations_search_name_person", "search_name", "person_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    # The attendee, as given at sign-up (or corrected later by the attendee or staff).
    name: Mapped[str] = mapped_column(String(100))
    furigana: Mapped[str] = mapped_column(String(100), index=True)
    phone: Mapped[str] = mapped_column(String(40), default="")
    prefecture: Mapped[str] = mapped_column(String(16), default="")
    iwate_relation: Mapped[str] = mapped_column(String(16), default="none")
    occupation: Mapped[str] = mapped_column(Text, default="")
    skills: Mapped[str] = mapped_column(Text, default="")
    # The attendee's search keys (as Person.search_name/search_phone): staff find a person by any of
    # their registrations' attendees.
    search_name: Mapped[str] = mapped_column(Text, server_default="")
    search_phone: Mapped[str] = mapped_column(String(40), server_default="")
    # Waiting-list order is (waitlisted_at, id); positions are derived, so they never have gaps.
    waitlisted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # When the online seminar's join URL was mailed at its reveal time (services/join_url_notices).
    join_url_mailed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    cancelled_by: Mapped[str] = mapped_column(String(16), default="")
    manage_token: Mapped[str] = mapped_column(String(64), unique=True)
    ticket_code: Mapped[str] = mapped_column(String(64), unique=True)
    consent_version: Mapped[str] = mapped_column(String(32))
    # Which text of that notice version was shown: 'ja', or 'en' (its English text).
    consent_language: Mapped[str] = mapped_column(String(2), default="ja", server_default="ja")
    consent_at: Mapped[datetime] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(16), default="web")
    # The language the participant signed up in: every mail about this registration is written in it.
    locale: Mapped[str] = mapped_column(String(5), default="ja", server_default="ja")
    staff_note: Mapped[str] = mapped_column(Text, default="")
    # Staff may give an applicant the lottery's first round (e.g. came to a related seminar).
    lottery_priority: Mapped[bool] = mapped_column(default=False, server_default=false())
    # A companion (同行者) points at the registration of the person who signed the group up; the
    # lead and everyone signed up alone have NULL. The group takes seats, or waits, together.
    lead_registration_id: Mapped[int | None] = mapped_column(ForeignKey("registrations.id"), index=True,
                                                             default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    event = relationship("Event")
    person = relationship("Person", back_populates="registrations")
    lead: Mapped[Registration | None] = relationship(remote_side="Registration.id", back_populates="companions")
    companions: Mapped[list[Registration]] = relationship(back_populates="lead", order_by="Registration.id")
    answers: Mapped[list[Answer]] = relationship(
        back_populates="registration", cascade="all, delete-orphan", order_by="Answer.id"
    )

    @property
    def attendee(self) -> dict[str, str]:
        """The attendee's details as given for this registration (API payloads, exports)."""
        return {field: getattr(self, field) for field in ATTENDEE_FIELDS}

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


event.listen(Registration, "before_insert", keep_search_keys)
event.listen(Registration, "before_update", keep_search_keys)


class Answer(db.Model):
    __tablename__ = "answers"
    __table_args__ = (UniqueConstraint("registration_id", "question_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id", ondelete="CASCADE"))
    question_id: Mapped[int | None] = mapped_column(ForeignKey("questions.id", ondelete="SET NULL"))
    # Kept so an answer stays readable even if the question is edited later.
    question_label: Mapped[str] = mapped_column(String(300))
    value: Mapped[str] = mapped_column(Text, default="")

    registration: Mapped[Registration] = relationship(back_populates="answers")
    question = relationship("Question")
