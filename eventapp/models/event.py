"""An event with its days, programme items and sign-up questions."""

from __future__ import annotations

from datetime import datetime, time

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Integer, String, Text, Time, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import UTCDateTime, utcnow

EVENT_KINDS = ("online_seminar", "onsite_seminar", "fieldwork", "matching_session")
EVENT_STATUSES = ("draft", "published", "cancelled")
QUESTION_KINDS = ("text", "choice", "yesno")
MAX_COMPANIONS_LIMIT = 10  # companions one sign-up may bring at most (staff choose 0..this per event)
# Calendar reminders (VALARM) staff may pick per event: a time before each day's start, or "eve" for
# 18:00 JST the evening before. Ordered from the earliest; services/calendar.py knows what each means.
CALENDAR_ALARMS = ("1w", "3d", "eve", "1d", "3h", "2h", "1h", "30m", "15m")
MAX_CALENDAR_ALARMS = 4
# Reminder mails staff may pick per event: a time before the event's start (集合 for fieldwork).
# Ordered from the earliest; services/reminders.py knows what each means and the kinds' defaults.
REMINDERS = ("1w", "3d", "2d", "1d", "3h", "1h")
MAX_REMINDERS = 3
# How seats are given: 先着順 (first come) or 抽選 (a lottery drawn at lottery_draw_at, services/lottery.py).
ALLOCATIONS = ("first_come", "lottery")
# What a lottery does with the applicants who did not win: the waiting list in drawn order, or a kind note.
LOTTERY_LOSERS = ("waitlist", "not_selected")


class Event(db.Model):
    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("capacity >= 0", name="capacity_not_negative"),
        CheckConstraint("fee_yen >= 0", name="fee_not_negative"),
        CheckConstraint(f"kind IN {EVENT_KINDS}", name="kind_valid"),
        CheckConstraint(f"status IN {EVENT_STATUSES}", name="status_valid"),
        CheckConstraint("checkin_opens_at IS NULL OR checkin_closes_at IS NULL OR checkin_closes_at > checkin_opens_at",
                        name="checkin_window_order"),
        CheckConstraint(f"max_companions BETWEEN 0 AND {MAX_COMPANIONS_LIMIT}", name="max_companions_range"),
        CheckConstraint(f"allocation IN {ALLOCATIONS}", name="allocation_valid"),
        CheckConstraint(f"lottery_losers IN {LOTTERY_LOSERS}", name="lottery_losers_valid"),
        CheckConstraint("allocation != 'lottery' OR lottery_draw_at IS NOT NULL", name="lottery_has_draw_time"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(300))
    summary: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    # Optional English texts, shown in English mode ('' = show the Japanese one); see docs/i18n.md.
    title_en: Mapped[str] = mapped_column(String(300), default="", server_default="")
    summary_en: Mapped[str] = mapped_column(Text, default="", server_default="")
    description_en: Mapped[str] = mapped_column(Text, default="", server_default="")
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The start before the latest move of a published event (日程変更); NULL: never moved once published.
    previous_starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    venue_name: Mapped[str] = mapped_column(String(300), default="")
    venue_address: Mapped[str] = mapped_column(String(500), default="")
    meeting_point: Mapped[str] = mapped_column(Text, default="")
    access: Mapped[str] = mapped_column(Text, default="")
    latitude: Mapped[float | None] = mapped_column(default=None)
    longitude: Mapped[float | None] = mapped_column(default=None)
    online_url: Mapped[str] = mapped_column(String(1000), default="")
    # From when confirmed participants of an online seminar see the join URL (page, mails, calendar);
    # NULL: as soon as their seat is confirmed.
    online_url_reveal_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # 集合 and 解散 (fieldwork): calendars start the first day at meeting_at (at meeting_point) and
    # end the last day at dismissal_at; NULL: the first/last day's own times.
    meeting_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    dismissal_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    what_to_bring: Mapped[str] = mapped_column(Text, default="")
    # Calendar reminders, a list of CALENDAR_ALARMS codes; NULL: the kind's defaults, []: none.
    calendar_alarms: Mapped[list | None] = mapped_column(JSON, default=None)
    # Reminder mails, a list of REMINDERS codes; NULL: the kind's defaults, []: none.
    reminders: Mapped[list | None] = mapped_column(JSON, default=None)
    capacity: Mapped[int] = mapped_column(Integer)
    registration_opens_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    registration_closes_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    cancellation_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    roster_freeze_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # When door staff may check people in (screens and API); NULL: the default window of
    # services/checkin.checkin_window (the day before the first day to the day after the last).
    checkin_opens_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    checkin_closes_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    fee_yen: Mapped[int] = mapped_column(Integer, default=0)
    # How many companions (同行者) one sign-up may bring; each gets a registration (seat) of its own.
    max_companions: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    allocation: Mapped[str] = mapped_column(String(16), default="first_come", server_default="first_come")
    # 抽選: sign-ups before lottery_draw_at are applications (status 'applied'); the draw sets
    # lottery_drawn_at (never twice), the seed (hex) and what went in (applicant/priority ids, order).
    lottery_draw_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    lottery_drawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    lottery_seed: Mapped[str | None] = mapped_column(String(64), default=None)
    lottery_losers: Mapped[str] = mapped_column(String(16), default="waitlist", server_default="waitlist")
    lottery_record: Mapped[dict | None] = mapped_column(JSON, default=None)
    organiser_name: Mapped[str] = mapped_column(String(200), default="")
    organiser_email: Mapped[str] = mapped_column(String(254), default="")
    organiser_phone: Mapped[str] = mapped_column(String(40), default="")
    # Bumped on every change of time, place or status so calendar clients replace their copy.
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    days: Mapped[list[EventDay]] = relationship(
        back_populates="event", order_by="EventDay.starts_at", cascade="all, delete-orphan"
    )
    questions: Mapped[list[Question]] = relationship(
        back_populates="event", order_by="Question.position", cascade="all, delete-orphan"
    )

    def text_in(self, field: str, language: str) -> str:
        """title/summary/description in `language`: the English text if given, else the Japanese."""
        return (language == "en" and getattr(self, f"{field}_en")) or getattr(self, field)

    # What participant pages show: English texts in English mode (docs/i18n.md).
    @property
    def shown_title(self) -> str:
        from ..formatting import english_mode
        return self.text_in("title", "en" if english_mode() else "ja")

    @property
    def shown_summary(self) -> str:
        from ..formatting import english_mode
        return self.text_in("summary", "en" if english_mode() else "ja")

    @property
    def shown_description(self) -> str:
        from ..formatting import english_mode
        return self.text_in("description", "en" if english_mode() else "ja")

    @property
    def is_lottery(self) -> bool:
        return self.allocation == "lottery"

    def lottery_open(self, now: datetime | None = None) -> bool:
        """Whether a sign-up now is an application to the lottery: until it is drawn, also between the
        draw time and the pass that draws it, so nobody takes a seat ahead of the applicants."""
        return self.allocation == "lottery" and self.lottery_drawn_at is None

    @property
    def is_online(self) -> bool:
        return self.kind == "online_seminar"

    @property
    def has_qr_ticket(self) -> bool:
        """Onsite seminars, fieldwork and matching sessions check people in with a QR ticket; online ones don't."""
        return not self.is_online

    def join_url_revealed(self, now: datetime | None = None) -> bool:
        """Whether the online join URL may be shown yet (to confirmed participants only: the caller checks)."""
        if not self.is_online or not self.online_url:
            return False
        return self.online_url_reveal_at is None or (now or utcnow()) >= self.online_url_reveal_at

    @property
    def active_questions(self) -> list[Question]:
        return [q for q in self.questions if q.is_active]

    def __repr__(self) -> str:
        return f"<Event {self.slug}>"


class EventDay(db.Model):
    __tablename__ = "event_days"
    __table_args__ = (CheckConstraint("ends_at > starts_at", name="ends_after_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    title: Mapped[str] = mapped_column(String(200), default="")

    event: Mapped[Event] = relationship(back_populates="days")
    items: Mapped[list[ProgrammeItem]] = relationship(
        back_populates="day", order_by="(ProgrammeItem.starts_at, ProgrammeItem.position)",
        cascade="all, delete-orphan",
    )


class ProgrammeItem(db.Model):
    __tablename__ = "programme_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    day_id: Mapped[int] = mapped_column(ForeignKey("event_days.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[time] = mapped_column(Time())
    ends_at: Mapped[time | None] = mapped_column(Time(), default=None)
    title: Mapped[str] = mapped_column(String(300))
    place: Mapped[str] = mapped_column(String(300), default="")
    position: Mapped[int] = mapped_column(Integer, default=0)

    day: Mapped[EventDay] = relationship(back_populates="items")


class Question(db.Model):
    """A per-event sign-up question. Removed questions are deactivated so given answers stay."""

    __tablename__ = "questions"
    __table_args__ = (CheckConstraint(f"kind IN {QUESTION_KINDS}", name="kind_valid"),
                      UniqueConstraint("event_id", "key", name="uq_questions_event_key"))

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    # Stable identifier used in API payloads and exports (e.g. "dietary", "bus").
    key: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(300))
    help_text: Mapped[str] = mapped_column(String(500), default="")
    required: Mapped[bool] = mapped_column(default=False)
    # 重要: answers shown highlighted at the door and on the 受付用 roster (allergies and the like;
    # the `dietary` key is always treated as important).
    important: Mapped[bool] = mapped_column(default=False)
    choices: Mapped[list] = mapped_column(JSON, default=list)
    position: Mapped[int] = mapped_column(Integer, default=0)
    is_active: Mapped[bool] = mapped_column(default=True)

    event: Mapped[Event] = relationship(back_populates="questions")
