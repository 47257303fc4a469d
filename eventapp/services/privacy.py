"""The privacy notice shown before sign-up (個人情報の取扱い)."""

from __future__ import annotations

from sqlalchemy import select

from ..extensions import db
from ..models import PrivacyNotice

DEFAULT_NOTICE = PrivacyNotice(
    version="2025-04",
    purpose=(
        "ご登録いただいた個人情報は、本イベントの運営(参加者の受付、連絡、名簿・保険・送迎の手配)、"
        "遠恋複業課の関連イベントのご案内、参加状況の統計(個人を特定しない形)に利用します。"
        "法令に基づく場合を除き、ご本人の同意なく第三者に提供することはありません。"
        "ただし、フィールドワークの旅行保険・送迎の手配に必要な範囲で、委託先に提供します。"
    ),
    body=(
        "取得する情報: 氏名、ふりがな、メールアドレス、電話番号、お住まいの都道府県、岩手とのご関係、"
        "ご職業・スキル、イベントごとの設問への回答。\n"
        "保存期間: イベント終了後1年を経過した時点で、個人を特定できる情報を削除(匿名化)します。\n"
        "開示・訂正・削除のご請求は下記の窓口までご連絡ください。"
    ),
    contact="岩手県 遠恋複業課 事務局 (メール: info@example.jp)",
)


def current_notice() -> PrivacyNotice:
    """The newest published notice, or the built-in one before an admin has published any."""
    notice = db.session.execute(
        select(PrivacyNotice).order_by(PrivacyNotice.published_at.desc(), PrivacyNotice.id.desc()).limit(1)
    ).scalar_one_or_none()
    return notice or DEFAULT_NOTICE
