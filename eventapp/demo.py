"""Demo data: the programme's real 2025 events, upcoming copies and a few registrations.

Idempotent: events are keyed by slug, people by email, the demo admin by email.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import select

from .extensions import db
from .formatting import JST
from .models import Event, User
from .services import events as event_service
from .services import registration as registration_service
from .services.accounts import create_user

DEMO_ADMIN_EMAIL = "admin@example.jp"
DEMO_ADMIN_PASSWORD = "hanamaki-grape-demo"
ORGANISER = {"organiser_name": "岩手県 遠恋複業課 事務局", "organiser_email": "enren@example.jp",
             "organiser_phone": "019-000-0000"}


def jst(d: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(d, time(hh, mm), JST)


def seminar(d: date, slug: str) -> dict:
    return {
        **ORGANISER, "slug": slug, "kind": "online_seminar", "status": "published",
        "title": "オンラインセミナー「地方複業のはじめかた — 今いる場所から始める、地域との協働ストーリー」",
        "summary": "首都圏に住みながら岩手の企業・団体と関わる「遠恋複業」。実践者の話から、はじめの一歩を考えます。",
        "description": "地方複業に関心のある方向けの入門セミナーです。\n"
                       "・遠恋複業課の取り組み紹介\n・実践者によるトーク(本業と両立しながら地域と協働するまで)\n"
                       "・質疑応答\n\nカメラ・マイクはオフのままでご参加いただけます。",
        "starts_at": jst(d, 19), "ends_at": jst(d, 20), "capacity": 100, "fee_yen": 0,
        "online_url": "https://meet.example.jp/enren-seminar",
        "registration_closes_at": jst(d, 18), "cancellation_deadline": jst(d, 18),
        "days": [{"starts_at": jst(d, 19), "ends_at": jst(d, 20), "items": [
            {"starts_at": time(19, 0), "title": "オープニング・遠恋複業課の紹介"},
            {"starts_at": time(19, 10), "title": "実践者トーク「今いる場所から始める、地域との協働」"},
            {"starts_at": time(19, 45), "title": "質疑応答・今後のフィールドワークのご案内"},
        ]}],
    }


def grape(d: date, slug: str) -> dict:
    return {
        **ORGANISER, "slug": slug, "kind": "fieldwork", "status": "published",
        "title": "岩手・花巻でブドウ収穫体験フィールドワーク",
        "summary": "花巻のぶどう畑で収穫を体験し、生産者と地域産ぶどうの販路拡大・ブランド化について語り合います。",
        "description": "受入団体: かんたはうす運営組合(花巻市)\n地域の課題: 地域産ぶどうの販路拡大とブランド化\n\n"
                       "収穫体験のあと、生産者の皆さんと意見交換を行います。",
        "starts_at": jst(d, 10), "ends_at": jst(d, 16), "capacity": 20, "fee_yen": 3000, "max_companions": 3,
        "venue_name": "かんたはうす(花巻市)", "venue_address": "岩手県花巻市",
        "meeting_point": "JR新花巻駅 東口 9:30 集合(送迎バスあり)",
        "access": "東京駅から東北新幹線で新花巻駅まで約2時間30分。",
        "what_to_bring": "汚れてもよい服装、長靴、帽子、飲み物、雨具",
        "latitude": 39.388, "longitude": 141.113,
        "registration_closes_at": jst(d - timedelta(days=5), 23, 59),
        "cancellation_deadline": jst(d - timedelta(days=3), 17),
        "roster_freeze_at": jst(d - timedelta(days=2), 12),
        "days": [{"starts_at": jst(d, 10), "ends_at": jst(d, 16), "items": [
            {"starts_at": time(9, 30), "title": "新花巻駅 集合・バスで移動", "place": "JR新花巻駅 東口"},
            {"starts_at": time(10, 0), "ends_at": time(12, 0), "title": "ブドウ収穫体験", "place": "ぶどう畑"},
            {"starts_at": time(12, 0), "ends_at": time(13, 0), "title": "昼食(地元食材のお弁当)"},
            {"starts_at": time(13, 0), "ends_at": time(15, 30), "title": "生産者との意見交換・グループワーク"},
            {"starts_at": time(16, 0), "title": "新花巻駅 解散"},
        ]}],
        "questions": [
            {"key": "bus", "kind": "yesno", "label": "新花巻駅からの送迎バスを利用しますか", "required": True},
            {"key": "dietary", "kind": "text", "label": "食物アレルギー・食事制限"},
        ],
    }


def onsen(d: date, slug: str, capacity: int = 25) -> dict:
    d2 = d + timedelta(days=1)
    return {
        **ORGANISER, "slug": slug, "kind": "fieldwork", "status": "published",
        "title": "地域と温泉を楽しみながら考える 遠恋複業フィールドワーク",
        "summary": "夏油温泉に泊まり、事業継承の物語と伝統芸能「鬼剣舞」に触れ、地域課題に取り組むグループワークを行う1泊2日。",
        "description": "受入: 夏油温泉観光ホテル、夏油古民家カフェ kobiru ほか(北上市)\n\n"
                       "1日目は事業継承ストーリーと鬼剣舞、2日目は地域課題に取り組むグループワークと発表を行います。",
        "starts_at": jst(d, 13), "ends_at": jst(d2, 12), "capacity": capacity, "fee_yen": 15000,
        "venue_name": "夏油温泉観光ホテル", "venue_address": "岩手県北上市和賀町岩崎新田1-22",
        "meeting_point": "JR北上駅 東口 12:00 集合(送迎バスあり)",
        "access": "東京駅から東北新幹線で北上駅まで約2時間40分。北上駅から送迎バスで約50分。",
        "what_to_bring": "着替え、洗面用具、歩きやすい靴、防寒着(山間部は冷えます)",
        "latitude": 39.2108, "longitude": 140.9017,
        "registration_closes_at": jst(d - timedelta(days=7), 23, 59),
        "cancellation_deadline": jst(d - timedelta(days=4), 17),
        "roster_freeze_at": jst(d - timedelta(days=3), 12),
        "days": [
            {"starts_at": jst(d, 13), "ends_at": jst(d, 21), "title": "1日目", "items": [
                {"starts_at": time(12, 0), "title": "北上駅 集合・送迎バスで移動", "place": "JR北上駅 東口"},
                {"starts_at": time(13, 0), "ends_at": time(14, 30), "title": "事業継承ストーリー",
                 "place": "夏油温泉観光ホテル 会議室"},
                {"starts_at": time(15, 0), "ends_at": time(16, 30), "title": "伝統芸能「鬼剣舞」学びの時間"},
                {"starts_at": time(18, 30), "ends_at": time(21, 0), "title": "夕食・地元の方々との交流会"},
            ]},
            {"starts_at": jst(d2, 8), "ends_at": jst(d2, 12), "title": "2日目", "items": [
                {"starts_at": time(9, 0), "ends_at": time(11, 0), "title": "地域課題に取り組むグループワーク"},
                {"starts_at": time(11, 0), "ends_at": time(12, 0), "title": "地元の方々との交流&アイデア発表"},
                {"starts_at": time(12, 30), "title": "北上駅 解散"},
            ]},
        ],
        "questions": [
            {"key": "bus", "kind": "yesno", "label": "北上駅からの送迎バスを利用しますか", "required": True},
            {"key": "lodging", "kind": "choice", "label": "お部屋のご希望", "required": True,
             "choices": ["相部屋可(同性)", "個室希望(追加料金あり)"]},
            {"key": "dietary", "kind": "text", "label": "食物アレルギー・食事制限"},
        ],
    }


def matching(d: date, slug: str) -> dict:
    return {
        **ORGANISER, "slug": slug, "kind": "matching_session", "status": "published",
        "title": "遠恋複業マッチング会",
        "summary": "岩手の受入企業・団体と、複業で関わりたい方が直接話せるマッチング会です。フィールドワーク参加者を優先してご案内します。",
        "description": "受入企業・団体から地域課題とプロジェクトを紹介し、少人数の面談を行います。",
        "starts_at": jst(d, 14), "ends_at": jst(d, 17), "capacity": 30, "fee_yen": 0,
        "venue_name": "東京会場(千代田区内・詳細は参加確定の方にご案内)", "venue_address": "東京都千代田区",
        "registration_closes_at": jst(d - timedelta(days=3), 23, 59),
        "days": [{"starts_at": jst(d, 14), "ends_at": jst(d, 17), "items": [
            {"starts_at": time(14, 0), "title": "受入企業・団体のプロジェクト紹介"},
            {"starts_at": time(15, 0), "ends_at": time(16, 40), "title": "個別面談(1回15分×複数ラウンド)"},
            {"starts_at": time(16, 40), "title": "まとめ・今後の進め方"},
        ]}],
    }


DEMO_PEOPLE = [
    ("佐藤 花子", "さとう はなこ", "hanako.sato@example.com", "東京都", "origin"),
    ("鈴木 一郎", "すずき いちろう", "ichiro.suzuki@example.com", "神奈川県", "none"),
    ("高橋 美咲", "たかはし みさき", "misaki.takahashi@example.com", "埼玉県", "connected"),
    ("田中 健太", "たなか けんた", "kenta.tanaka@example.com", "千葉県", "none"),
    ("伊藤 さくら", "いとう さくら", "sakura.ito@example.com", "東京都", "origin"),
    ("渡辺 翔", "わたなべ しょう", "sho.watanabe@example.com", "東京都", "connected"),
    ("山本 彩", "やまもと あや", "aya.yamamoto@example.com", "神奈川県", "none"),
    ("中村 大輔", "なかむら だいすけ", "daisuke.nakamura@example.com", "東京都", "origin"),
    ("小林 由美", "こばやし ゆみ", "yumi.kobayashi@example.com", "埼玉県", "none"),
    ("加藤 拓也", "かとう たくや", "takuya.kato@example.com", "東京都", "connected"),
    ("吉田 真理", "よしだ まり", "mari.yoshida@example.com", "千葉県", "none"),
    ("山田 悠人", "やまだ ゆうと", "yuto.yamada@example.com", "東京都", "origin"),
]


def _demo_events(today: date) -> list[tuple[dict, int]]:
    """(event data, number of demo sign-ups)."""
    def next_weekday(start: date, weekday: int) -> date:
        return start + timedelta(days=(weekday - start.weekday()) % 7)

    upcoming_seminar = next_weekday(today + timedelta(days=14), 0)  # a Monday
    upcoming_onsen = next_weekday(today + timedelta(days=30), 5)  # a Saturday
    upcoming_grape = next_weekday(today + timedelta(days=60), 6)  # a Sunday
    upcoming_matching = next_weekday(upcoming_onsen + timedelta(days=21), 5)
    return [
        (seminar(date(2025, 8, 25), "chihou-fukugyou-seminar-2025"), 12),
        (grape(date(2025, 10, 19), "hanamaki-grape-fieldwork-2025"), 10),
        (onsen(date(2025, 11, 8), "geto-onsen-fieldwork-2025"), 12),
        (matching(date(2025, 12, 6), "matching-2025"), 8),
        (seminar(upcoming_seminar, f"chihou-fukugyou-seminar-{upcoming_seminar:%Y%m%d}"), 5),
        (onsen(upcoming_onsen, f"geto-onsen-fieldwork-{upcoming_onsen:%Y%m%d}", capacity=15), 12),
        (grape(upcoming_grape, f"hanamaki-grape-fieldwork-{upcoming_grape:%Y%m%d}"), 3),
        (matching(upcoming_matching, f"matching-{upcoming_matching:%Y%m%d}"), 0),
    ]


def load_demo_data(today: date | None = None) -> str:
    today = today or datetime.now(JST).date()
    created_events = created_registrations = 0
    if db.session.execute(select(User).where(User.email == DEMO_ADMIN_EMAIL)).scalar_one_or_none() is None:
        create_user(DEMO_ADMIN_EMAIL, "admin", DEMO_ADMIN_PASSWORD, name="デモ管理者")
    for data, signups in _demo_events(today):
        if db.session.execute(select(Event.id).where(Event.slug == data["slug"])).first():
            continue
        event = event_service.create_event(data)
        created_events += 1
        for index, (name, kana, email, prefecture, relation) in enumerate(DEMO_PEOPLE[:signups]):
            answers = {}
            for question in event.questions:
                answers[question.key] = {"yesno": "yes" if index % 3 else "no", "choice": question.choices[
                    index % len(question.choices)] if question.choices else "", "text": "" if index % 4 else "えび"
                }[question.kind]
            registration_service.register(
                event.id, {"name": name, "furigana": kana, "email": email, "prefecture": prefecture,
                           "iwate_relation": relation}, answers, consent=True, source="demo",
                staff_override=True, notify=False,
                now=min(event.starts_at, datetime.now(JST)) - timedelta(days=20 - index),
            )
            created_registrations += 1
    from .demo_matching import load_matching_demo
    matching_summary = load_matching_demo(today)
    return f"demo data: {created_events} events and {created_registrations} registrations added; {matching_summary}"
