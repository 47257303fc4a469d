"""Matching sessions: links to earlier events, attendance, invitations, preferences, timetable,
outcomes and the post-event survey."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import UTCDateTime, utcnow
from .organisation import PROJECT_TYPES

ACCESS_RULES = ("open", "priority", "attendees_only")
ACCESS_RULE_LABELS = {"open": "どなたでも申込可", "priority": "参加者優先(参加者は先行受付)",
                      "attendees_only": "対象イベントの参加者のみ"}
LINK_SCOPES = ("event", "fy_fieldwork", "fy_seminar")
LINK_SCOPE_LABELS = {"event": "特定のイベント", "fy_fieldwork": "同じ年度のフィールドワーク",
                     "fy_seminar": "同じ年度のセミナー"}
ATTENDANCE_SOURCES = ("code", "staff")
INVITATION_REASONS = ("attendee", "override")
OUTCOME_STATUSES = ("met", "proposed", "matched", "ongoing", "ended")
OUTCOME_STATUS_LABELS = {"met": "面談済み", "proposed": "提案", "matched": "マッチング成立",
                         "ongoing": "継続中", "ended": "終了"}
MATCHED_STATUSES = ("matched", "ongoing", "ended")


class MatchingSettings(db.Model):
    """Access rule and timetable shape of one matching session."""

    __tablename__ = "matching_settings"
    __table_args__ = (
        CheckConstraint(f"access_rule IN {ACCESS_RULES}", name="access_rule_valid"),
        CheckConstraint("access_rule != 'priority' OR (attendees_from IS NOT NULL AND others_from IS NOT NULL"
                        " AND others_from >= attendees_from)", name="priority_has_dates"),
        CheckConstraint("rounds BETWEEN 1 AND 20", name="rounds_range"),
        CheckConstraint("org_capacity_per_round BETWEEN 1 AND 20", name="org_capacity_range"),
    )

    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), primary_key=True)
    access_rule: Mapped[str] = mapped_column(String(16), default="open")
    attendees_from: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    others_from: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    rounds: Mapped[int] = mapped_column(Integer, default=4)
    org_capacity_per_round: Mapped[int] = mapped_column(Integer, default=1)
    minutes_per_round: Mapped[int] = mapped_column(Integer, default=15)

    event = relationship("Event")


class MatchingLink(db.Model):
    """A matching session's earlier event: a specific one, or a kind within the same fiscal year."""

    __tablename__ = "matching_links"
    __table_args__ = (
        CheckConstraint(f"scope IN {LINK_SCOPES}", name="scope_valid"),
        CheckConstraint("(scope = 'event') = (linked_event_id IS NOT NULL)", name="event_scope_has_event"),
        CheckConstraint("linked_event_id IS NULL OR linked_event_id != matching_event_id", name="not_self"),
        UniqueConstraint("matching_event_id", "scope", "linked_event_id", name="uq_matching_links"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    matching_event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(16), default="event")
    linked_event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), default=None)

    matching_event = relationship("Event", foreign_keys=[matching_event_id])
    linked_event = relationship("Event", foreign_keys=[linked_event_id])

    @property
    def label(self) -> str:
        if self.scope == "event" and self.linked_event is not None:
            return self.linked_event.title
        return LINK_SCOPE_LABELS.get(self.scope, self.scope)


class EventAttendanceState(db.Model):
    """Per event: the 出席コード shown during an online seminar, and when attendance was declared final."""

    __tablename__ = "event_attendance_states"

    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), primary_key=True)
    code: Mapped[str] = mapped_column(String(16), default="")
    finalised_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    finalised_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)


class AttendanceCodeAttempts(db.Model):
    """Wrong 出席コード entries of one registration, and until when its code entry is locked. In the
    database, not in a worker's memory: every worker sees the same count."""

    __tablename__ = "attendance_code_attempts"
    __table_args__ = (CheckConstraint("failures >= 0", name="failures_valid"),)

    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id", ondelete="CASCADE"),
                                                 primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class Attendance(db.Model):
    """Attendance not recorded by a check-in scan: an online seminar's code, or staff marking."""

    __tablename__ = "attendances"
    __table_args__ = (CheckConstraint(f"source IN {ATTENDANCE_SOURCES}", name="source_valid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id", ondelete="CASCADE"), unique=True)
    source: Mapped[str] = mapped_column(String(16))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)

    registration = relationship("Registration")


class Invitation(db.Model):
    """A personal sign-up link for a matching session (attendee invitation or staff override)."""

    __tablename__ = "invitations"
    __table_args__ = (
        CheckConstraint(f"reason IN {INVITATION_REASONS}", name="reason_valid"),
        UniqueConstraint("matching_event_id", "person_id", name="uq_invitations_event_person"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    matching_event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(String(16), default="attendee")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)

    matching_event = relationship("Event")
    person = relationship("Person")


class Preference(db.Model):
    """A participant's ranked wish to talk to an organisation (1 = most wanted)."""

    __tablename__ = "preferences"
    __table_args__ = (
        CheckConstraint("rank >= 1", name="rank_positive"),
        UniqueConstraint("registration_id", "rank", name="uq_preferences_rank"),
        UniqueConstraint("registration_id", "organisation_id", name="uq_preferences_org"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id", ondelete="CASCADE"), index=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    rank: Mapped[int] = mapped_column(Integer)

    registration = relationship("Registration")
    organisation = relationship("Organisation")


class TimetableSlot(db.Model):
    """One talk of the saved (and possibly hand-edited) timetable of a matching session."""

    __tablename__ = "timetable_slots"
    __table_args__ = (
        CheckConstraint("round >= 1", name="round_positive"),
        UniqueConstraint("event_id", "round", "registration_id", name="uq_timetable_person_round"),
        UniqueConstraint("event_id", "round", "organisation_id", "table_no", name="uq_timetable_table_round"),
        UniqueConstraint("event_id", "registration_id", "organisation_id", name="uq_timetable_pair"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    round: Mapped[int] = mapped_column(Integer)
    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id", ondelete="CASCADE"))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    table_no: Mapped[int] = mapped_column(Integer, default=1)

    registration = relationship("Registration")
    organisation = relationship("Organisation")


class Outcome(db.Model):
    """Where a person and an organisation stand: 面談済み → 提案 → マッチング成立 → 継続中 / 終了."""

    __tablename__ = "outcomes"
    __table_args__ = (
        CheckConstraint(f"status IN {OUTCOME_STATUSES}", name="status_valid"),
        CheckConstraint(f"project_type IS NULL OR project_type IN {PROJECT_TYPES}", name="project_type_valid"),
        CheckConstraint(f"status NOT IN {MATCHED_STATUSES} OR (matched_on IS NOT NULL AND project_type IS NOT NULL)",
                        name="match_has_date_and_type"),
        UniqueConstraint("person_id", "organisation_id", name="uq_outcomes_person_org"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    matching_event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="SET NULL"),
                                                          default=None)
    status: Mapped[str] = mapped_column(String(16), default="met")
    matched_on: Mapped[date | None] = mapped_column(Date, default=None)
    project_type: Mapped[str | None] = mapped_column(String(16), default=None)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    person = relationship("Person")
    organisation = relationship("Organisation")
    matching_event = relationship("Event")

    @property
    def status_label(self) -> str:
        return OUTCOME_STATUS_LABELS.get(self.status, self.status)

    @property
    def is_match(self) -> bool:
        return self.status in MATCHED_STATUSES


class SurveyResponse(db.Model):
    """Post-event survey (アンケート): one answer per registration."""

    __tablename__ = "survey_responses"
    __table_args__ = (CheckConstraint("satisfaction BETWEEN 1 AND 5", name="satisfaction_range"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id", ondelete="CASCADE"), unique=True)
    satisfaction: Mapped[int] = mapped_column(Integer)
    would_join_again: Mapped[bool] = mapped_column()
    comment: Mapped[str] = mapped_column(Text, default="")
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    registration = relationship("Registration")
