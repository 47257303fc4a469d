"""Fees (参加費): one row per payment, waiver or refund recorded for a registration.

Rows are never changed in what they record (only the receipt's 宛名 and reissue count): a refund is
a row of its own. A registration's payment status is the kind of its newest row (none: 未払い),
so it is one indexed lookup per registration, computed in SQL (services/payments.py).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import UTCDateTime, utcnow

PAYMENT_KINDS = ("payment", "waiver", "refund")
PAYMENT_METHODS = ("cash", "bank_transfer", "other")
# What a registration's newest row makes of it; no row at all is `unpaid`, a free event `none`.
STATUS_BY_KIND = {"payment": "paid", "waiver": "waived", "refund": "refunded"}
PAYMENT_STATUSES = ("none", "unpaid", "paid", "waived", "refunded")


class Payment(db.Model):
    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint(f"kind IN {PAYMENT_KINDS}", name="kind_valid"),
        CheckConstraint(f"method IN {PAYMENT_METHODS}", name="method_valid"),
        CheckConstraint("amount_yen >= 0", name="amount_not_negative"),
        CheckConstraint("receipt_reissued_count >= 0", name="reissued_not_negative"),
        # Only a payment has a receipt.
        CheckConstraint("kind = 'payment' OR receipt_number IS NULL", name="receipt_only_for_payment"),
        Index("ix_payments_registration_id", "registration_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default="payment")
    method: Mapped[str] = mapped_column(String(16), default="cash")
    amount_yen: Mapped[int] = mapped_column(Integer)
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    # Client-chosen idempotency key (the door's offline queue retries): one nonce, one row.
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    note: Mapped[str] = mapped_column(String(200), default="")
    # 領収書: R<year>-<id, 6 digits>, set right after the insert (it needs the id).
    receipt_number: Mapped[str | None] = mapped_column(String(20), unique=True, default=None)
    receipt_name: Mapped[str] = mapped_column(String(100), default="")
    receipt_reissued_count: Mapped[int] = mapped_column(Integer, default=0)

    registration = relationship("Registration")
    recorded_by = relationship("User")

    @property
    def status(self) -> str:
        return STATUS_BY_KIND[self.kind]

    @property
    def recorded_by_name(self) -> str:
        user = self.recorded_by
        if user is None:
            return ""
        return user.name or user.email.split("@")[0]
