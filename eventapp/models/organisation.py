"""Host organisations (受入企業・団体) and the events they host or present at."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import UTCDateTime, utcnow

# Iwate's 33 municipalities (14 市, 15 町, 4 村) in the prefecture's usual order.
IWATE_MUNICIPALITIES = (
    "盛岡市", "宮古市", "大船渡市", "花巻市", "北上市", "久慈市", "遠野市", "一関市", "陸前高田市", "釜石市",
    "二戸市", "八幡平市", "奥州市", "滝沢市",
    "雫石町", "葛巻町", "岩手町", "紫波町", "矢巾町", "西和賀町", "金ケ崎町", "平泉町", "住田町", "大槌町",
    "山田町", "岩泉町", "田野畑村", "普代村", "軽米町", "野田村", "九戸村", "洋野町", "一戸町",
)
PROJECT_TYPES = ("business", "fan_community")
PROJECT_TYPE_LABELS = {"business": "ビジネスマッチング型", "fan_community": "ファンコミュニティ型"}
EVENT_ORG_ROLES = ("host", "presenter")
EVENT_ORG_ROLE_LABELS = {"host": "受入(ホスト)", "presenter": "登壇・参加"}


class Organisation(db.Model):
    __tablename__ = "organisations"
    __table_args__ = (
        CheckConstraint(f"municipality IN {IWATE_MUNICIPALITIES}", name="municipality_valid"),
        CheckConstraint(f"project_type IN {PROJECT_TYPES}", name="project_type_valid"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    furigana: Mapped[str] = mapped_column(String(200), default="")
    municipality: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text, default="")
    challenges: Mapped[str] = mapped_column(Text, default="")  # 課題
    project_type: Mapped[str] = mapped_column(String(16))
    contact_name: Mapped[str] = mapped_column(String(100), default="")
    contact_email: Mapped[str] = mapped_column(String(254), default="")
    contact_phone: Mapped[str] = mapped_column(String(40), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    event_links: Mapped[list[EventOrganisation]] = relationship(back_populates="organisation",
                                                                 cascade="all, delete-orphan")

    @property
    def project_type_label(self) -> str:
        return PROJECT_TYPE_LABELS.get(self.project_type, self.project_type)


class EventOrganisation(db.Model):
    __tablename__ = "event_organisations"
    __table_args__ = (
        UniqueConstraint("event_id", "organisation_id", name="uq_event_organisations_pair"),
        CheckConstraint(f"role IN {EVENT_ORG_ROLES}", name="role_valid"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16), default="host")

    event = relationship("Event")
    organisation: Mapped[Organisation] = relationship(back_populates="event_links")

    @property
    def role_label(self) -> str:
        return EVENT_ORG_ROLE_LABELS.get(self.role, self.role)
