"""Audit log entries, written in the same transaction as the change they describe."""

from __future__ import annotations

from flask import has_request_context
from sqlalchemy import select

from ..extensions import db
from ..models import AuditEntry, User

PAGE_SIZE = 50

ACTION_LABELS = {
    "create": "作成", "update": "変更", "duplicate": "複製", "publish": "公開", "unpublish": "非公開",
    "cancel": "中止・キャンセル", "export": "出力", "delete": "削除", "anonymise": "匿名化",
    "register": "代理申込", "confirm": "参加確定に変更", "note": "メモ", "resend": "再送",
    "message": "一斉連絡", "role": "役割変更", "deactivate": "無効化", "activate": "有効化",
    "password": "パスワード変更", "logout_all": "全端末からログアウト", "two_factor": "二要素認証",
    "attendance_lock": "出席コード入力の一時停止", "purge": "保存期間経過の匿名化", "privacy_notice": "個人情報の取扱い改定",
    "merge": "参加者の統合", "clear_undeliverable": "配信不可の解除", "schedule": "送信予約", "test_message": "テスト送信",
    "announce": "お知らせ配信", "announcement_consent": "お知らせ受信の同意", "announcement_unsubscribe": "お知らせの配信停止",
    "lottery_draw": "抽選", "lottery_priority": "抽選の優先枠",
}


def current_user() -> User | None:
    """The logged-in staff user of this request, or None (CLI, anonymous)."""
    if not has_request_context():
        return None
    from flask_login import current_user as user
    return user if getattr(user, "is_authenticated", False) else None


def record(action: str, object_type: str, object_id: int | None, summary: str, details: dict | None = None,
           *, user: User | None = None, actor: str | None = None) -> AuditEntry:
    """Add an audit entry; the user defaults to whoever is logged in (the CLI passes `actor`)."""
    user = user or current_user()
    entry = AuditEntry(user_id=user.id if user else None,
                       actor=actor or (user.email if user else "system"),
                       action=action, object_type=object_type, object_id=object_id,
                       summary=summary[:2000], details=details or {})
    db.session.add(entry)
    return entry


# Built once: the check-in door writes one entry per scan.
_INSERT = AuditEntry.__table__.insert()


def write_now(action: str, object_type: str, object_id: int | None, summary: str, details: dict | None = None,
              *, user: User | None = None) -> None:
    """Like `record`, but written at once with one INSERT and no ORM object: for hot paths that
    write their rows without the unit of work (a flush at commit would cost more than the insert)."""
    user = user or current_user()
    db.session.execute(_INSERT, {"user_id": user.id if user else None, "actor": user.email if user else "system",
                                 "action": action, "object_type": object_type, "object_id": object_id,
                                 "summary": summary[:2000], "details": details or {}})


def entries(*, action: str | None = None, object_type: str | None = None, object_id: int | None = None,
            page: int = 1) -> tuple[list[AuditEntry], bool]:
    """Newest first; returns one page and whether there is a next page."""
    stmt = select(AuditEntry)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    if object_type:
        stmt = stmt.where(AuditEntry.object_type == object_type)
    if object_id is not None:
        stmt = stmt.where(AuditEntry.object_id == object_id)
    page = max(page, 1)
    rows = db.session.execute(
        stmt.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE + 1)
    ).scalars().all()
    return list(rows[:PAGE_SIZE]), len(rows) > PAGE_SIZE
