"""Creating and changing events (API and staff screens share these)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..formatting import JST
from ..models import (
    ALLOCATIONS,
    CALENDAR_ALARMS,
    EVENT_KINDS,
    EVENT_STATUSES,
    MAX_CALENDAR_ALARMS,
    MAX_COMPANIONS_LIMIT,
    QUESTION_KINDS,
    Event,
    EventDay,
    ProgrammeItem,
    Question,
)
from ..models.base import utcnow
from ..models.event import LOTTERY_LOSERS
from . import calendar, reminders, text
from .capacity import Counts, count_columns, counts_for, lock_event
from .errors import DomainError, ValidationFailed
from .registration import fill_free_seats

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# A change of any of these makes calendars replace their copy (iCalendar SEQUENCE).
SEQUENCE_FIELDS = ("starts_at", "ends_at", "venue_name", "venue_address", "status", "online_url")
TEXT_FIELDS = ("title", "summary", "description", "venue_name", "venue_address", "meeting_point", "access",
               "online_url", "what_to_bring", "organiser_name", "organiser_email", "organiser_phone",
               "title_en", "summary_en", "description_en")
TIME_FIELDS = ("starts_at", "ends_at", "registration_opens_at", "registration_closes_at",
               "cancellation_deadline", "roster_freeze_at", "checkin_opens_at", "checkin_closes_at",
               "online_url_reveal_at", "meeting_at", "dismissal_at", "lottery_draw_at")
MULTILINE = {"summary", "description", "meeting_point", "access", "what_to_bring", "summary_en", "description_en"}
# Longest accepted text per field: String columns give their own length (services.text.column_limit);
# Text columns have theirs here. The API schemas use the same numbers (tests/security/test_lengths.py).
TEXT_LIMITS = {
    **{field: text.column_limit(getattr(Event, field)) for field in TEXT_FIELDS if field not in MULTILINE},
    "summary": 2000, "description": 20000, "meeting_point": 2000, "access": 5000, "what_to_bring": 5000,
    "summary_en": 2000, "description_en": 20000,  # optional English texts: the Japanese ones' limits
}
SLUG_LIMIT = text.column_limit(Event.slug)
DAY_TITLE_LIMIT = text.column_limit(EventDay.title)
ITEM_TITLE_LIMIT = text.column_limit(ProgrammeItem.title)
ITEM_PLACE_LIMIT = text.column_limit(ProgrammeItem.place)
QUESTION_LABEL_LIMIT = text.column_limit(Question.label)
QUESTION_HELP_LIMIT = text.column_limit(Question.help_text)
QUESTION_KEY_LIMIT = text.column_limit(Question.key)
CHOICE_LIMIT = 200  # choices live in a JSON column; the API's limit


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=JST) if value.tzinfo is None else value


MAX_EVENT_SPAN = timedelta(days=92)
YEARS = (2000, 2100)  # far dates overflow date arithmetic and UTC conversion (9999-12-31T23:59-09:00)


def in_year_range(value: datetime) -> bool:
    return YEARS[0] <= value.year <= YEARS[1]


# Default hours of the days of a multi-day event created without days: the first day runs from the
# event's start to 18:00, the last from 09:00 to its end, days in between 09:00–18:00. Cutting at
# midnight instead gave "11:00–00:00" and "00:00–15:00", which nobody means.
DAY_BEGINS, DAY_ENDS = time(9), time(18)


def default_days(starts_at: datetime, ends_at: datetime) -> list[EventDay]:
    """One day per JST calendar date the event spans, at daytime hours (see DAY_BEGINS/DAY_ENDS)."""
    start, end = starts_at.astimezone(JST), ends_at.astimezone(JST)
    if start.date() == end.date() or end - start <= timedelta(hours=24) and end.time() <= DAY_BEGINS:
        return [EventDay(starts_at=start.astimezone(UTC), ends_at=end.astimezone(UTC))]  # one day (or one night)
    days, current = [], start.date()
    while current <= end.date():
        midnight = datetime.combine(current, time(0), JST)
        day_start = max(start, datetime.combine(current, DAY_BEGINS, JST))
        day_end = min(end, datetime.combine(current, DAY_ENDS, JST))
        if current == start.date() and day_end <= day_start:  # starts in the evening: until midnight
            day_end = min(end, midnight + timedelta(days=1))
        if current == end.date() and day_end <= day_start:  # ends early in the morning
            day_start = max(start, midnight)
        if day_end > day_start:
            days.append(EventDay(starts_at=day_start.astimezone(UTC), ends_at=day_end.astimezone(UTC)))
        current += timedelta(days=1)
    return days


def days_span(days: list[EventDay]) -> tuple[datetime, datetime]:
    """The event's start and end as its days say (days are the source of truth)."""
    return min(_aware(d.starts_at) for d in days), max(_aware(d.ends_at) for d in days)


def _span_from_days(days: list[EventDay], data: dict) -> dict:
    """`data` with starts_at/ends_at taken from `days`; a different value given with them is refused."""
    starts, ends = days_span(days)
    errors = {}
    for field, value in (("starts_at", starts), ("ends_at", ends)):
        if data.get(field) is not None and _aware(data[field]) != value:
            errors[field] = _("開始・終了日時は日程(days)から決まります。日程の最初の開始・最後の終了と同じにするか、省略してください。")
    if errors:
        raise ValidationFailed(errors)
    return {**data, "starts_at": starts, "ends_at": ends}


def apply_event_fields(event: Event, data: dict, *, creating: bool) -> None:
    """Validate and copy plain event fields; raises ValidationFailed listing every problem."""
    errors: dict[str, str] = {}
    values = {}
    for field in TEXT_FIELDS:
        if field not in data:
            continue
        if field == "organiser_email":
            values[field] = text.check_email(errors, field, data[field])
        elif field == "online_url":
            values[field] = text.check_url(errors, field, data[field], limit=TEXT_LIMITS[field])
        else:
            values[field] = text.check(errors, field, data[field], limit=TEXT_LIMITS[field],
                                       multiline=field in MULTILINE)
    for field in TIME_FIELDS:
        if field in data:
            values[field] = _aware(data[field])
    for field in ("capacity", "fee_yen", "max_companions", "kind", "status", "slug", "latitude", "longitude",
                  "allocation", "lottery_losers"):
        if field in data:
            values[field] = data[field]

    merged = {f: getattr(event, f, None) for f in (*TIME_FIELDS, "capacity", "fee_yen", "kind", "status",
                                                     "slug", "title", "allocation", "lottery_losers")}
    merged.update(values)

    if not merged.get("title"):
        errors["title"] = _("タイトルを入力してください。")
    elif len(merged["title"]) > TEXT_LIMITS["title"]:
        errors["title"] = _("タイトルは%(max)s文字以内で入力してください。", max=TEXT_LIMITS["title"])
    if merged.get("kind") not in EVENT_KINDS:
        errors["kind"] = _("種類を選んでください。")
    if merged.get("status") not in EVENT_STATUSES:
        errors["status"] = _("状態が正しくありません。")
    slug = merged.get("slug")
    if not slug or not SLUG_RE.match(slug) or len(slug) > SLUG_LIMIT:
        errors["slug"] = _("URL名は半角英小文字・数字・ハイフンで入力してください(例: hanamaki-grape-2025)。")
    elif db.session.execute(select(Event.id).where(Event.slug == slug, Event.id != event.id)).first():
        errors["slug"] = _("このURL名は既に使われています。")
    capacity = merged.get("capacity")
    if capacity is None or not isinstance(capacity, int) or capacity < 0:
        errors["capacity"] = _("定員は0以上の整数で入力してください。")
    elif capacity > 100000:
        errors["capacity"] = _("定員が大きすぎます。")
    companions = values.get("max_companions")
    if "max_companions" in values and (not isinstance(companions, int) or isinstance(companions, bool)
                                       or not 0 <= companions <= MAX_COMPANIONS_LIMIT):
        errors["max_companions"] = _("同行者の上限は0〜%(max)s名の整数で入力してください。", max=MAX_COMPANIONS_LIMIT)
    fee = merged.get("fee_yen")
    if fee is not None and (not isinstance(fee, int) or fee < 0 or fee > 10_000_000):
        errors["fee_yen"] = _("参加費は0以上の整数(円)で入力してください。")
    starts, ends = merged.get("starts_at"), merged.get("ends_at")
    if starts is None:
        errors["starts_at"] = _("開始日時を入力してください。")
    if ends is None:
        errors["ends_at"] = _("終了日時を入力してください。")
    if starts and ends:
        if ends <= starts:
            errors["ends_at"] = _("終了日時は開始日時より後にしてください。")
        elif ends - starts > MAX_EVENT_SPAN:
            # default_days makes one row per date: a span of centuries would loop for minutes.
            errors["ends_at"] = _("イベントの期間は92日以内にしてください。")
        closes, opens = merged.get("registration_closes_at"), merged.get("registration_opens_at")
        if closes and closes > ends:
            errors["registration_closes_at"] = _("申込締切はイベント終了より前にしてください。")
        if opens and closes and opens >= closes:
            errors["registration_opens_at"] = _("受付開始は申込締切より前にしてください。")
        checkin_opens, checkin_closes = merged.get("checkin_opens_at"), merged.get("checkin_closes_at")
        for field, value in (("checkin_opens_at", checkin_opens), ("checkin_closes_at", checkin_closes)):
            if value is not None and not 2000 <= value.year <= 2100:  # year 1 in JST does not fit UTC
                errors[field] = _("日時は2000年から2100年の間で入力してください。")
        if ("checkin_opens_at" not in errors and "checkin_closes_at" not in errors and checkin_opens and checkin_closes
                and checkin_closes <= checkin_opens):
            errors["checkin_closes_at"] = _("受付(チェックイン)終了は受付開始より後にしてください。")
        deadline = merged.get("cancellation_deadline")
        if deadline and deadline > ends:
            errors["cancellation_deadline"] = _("キャンセル期限はイベント終了より前にしてください。")
        reveal = merged.get("online_url_reveal_at")
        if reveal and reveal >= ends:
            errors["online_url_reveal_at"] = _("参加URLの公開はイベント終了より前にしてください。")
        meeting, dismissal = merged.get("meeting_at"), merged.get("dismissal_at")
        if meeting and meeting >= ends:
            errors["meeting_at"] = _("集合日時はイベント終了より前にしてください。")
        if dismissal and dismissal <= starts:
            errors["dismissal_at"] = _("解散日時はイベント開始より後にしてください。")
        if meeting and dismissal and dismissal <= meeting and "dismissal_at" not in errors:
            errors["dismissal_at"] = _("解散日時は集合日時より後にしてください。")
    _check_lottery(errors, event, merged, values)
    for field in TIME_FIELDS:
        # Every instant, not only the event's own: a deadline in year 1 or 9999 must not reach the database.
        if merged.get(field) is not None and not in_year_range(merged[field]):
            errors[field] = _("日時は2000年から2100年の間で入力してください。")
    if "calendar_alarms" in data:
        values["calendar_alarms"] = _calendar_alarms(errors, data["calendar_alarms"])
    if "reminders" in data:
        values["reminders"] = reminders.validate_reminders(errors, data["reminders"])
    for field in ("latitude", "longitude"):
        value = values.get(field)
        limit = 90 if field == "latitude" else 180
        if value is not None and not -limit <= value <= limit:
            errors[field] = _("座標が正しくありません。")
    if errors:
        raise ValidationFailed(errors)

    changed_sequence = not creating and any(
        f in values and values[f] != getattr(event, f) for f in SEQUENCE_FIELDS
    )
    for field, value in values.items():
        setattr(event, field, value)
    if changed_sequence:
        event.sequence = (event.sequence or 0) + 1


def _check_lottery(errors: dict[str, str], event: Event, merged: dict, values: dict) -> None:
    """抽選: a draw time after registration opens and before the event; nothing changes once drawn."""
    allocation = merged.get("allocation") or "first_come"
    if allocation not in ALLOCATIONS:
        errors["allocation"] = _("申込方法は先着順か抽選を選んでください。")
        return
    if merged.get("lottery_losers") not in (None, *LOTTERY_LOSERS):
        errors["lottery_losers"] = _("落選者の扱いを選んでください。")
    if event.lottery_drawn_at is not None and any(
            f in values and values[f] != getattr(event, f) for f in ("allocation", "lottery_draw_at", "lottery_losers")):
        errors["allocation"] = _("抽選は既に行われたため、申込方法と抽選日時は変更できません。")
        return
    if allocation != "lottery":
        if event.id is not None and event.allocation == "lottery" and counts_for(event.id).applied:
            errors["allocation"] = _("抽選の応募者がいるため、先着順には変更できません(先に抽選を行ってください)。")
        return
    draw_at, opens, starts = merged.get("lottery_draw_at"), merged.get("registration_opens_at"), merged.get("starts_at")
    if draw_at is None:
        errors["lottery_draw_at"] = _("抽選の場合は抽選日時を入力してください。")
    elif opens and draw_at <= opens:
        errors["lottery_draw_at"] = _("抽選日時は受付開始より後にしてください。")
    elif starts and draw_at >= starts:
        errors["lottery_draw_at"] = _("抽選日時はイベント開始より前にしてください。")


def _calendar_alarms(errors: dict[str, str], value) -> list[str] | None:
    """None (the kind's defaults) or a list of distinct CALENDAR_ALARMS codes, at most MAX_CALENDAR_ALARMS."""
    if value is None:
        return None
    if (not isinstance(value, list | tuple) or not all(isinstance(code, str) and code in CALENDAR_ALARMS
                                                        for code in value)):
        errors["calendar_alarms"] = _("カレンダーの通知は一覧から選んでください。")
        return None
    if len(set(value)) > MAX_CALENDAR_ALARMS:
        errors["calendar_alarms"] = _("カレンダーの通知は%(max)s個までにしてください。", max=MAX_CALENDAR_ALARMS)
        return None
    return [code for code in CALENDAR_ALARMS if code in value]  # earliest first, no repeats


def create_event(data: dict) -> Event:
    """Create an event; with `days`, its start and end are those of the days (see _span_from_days)."""
    event = Event(status="draft", fee_yen=0, max_companions=0, sequence=0, allocation="first_come",
                  lottery_losers="waitlist")
    data = {"status": "draft", "fee_yen": 0, **data}
    days = None
    if data.get("days") is not None:
        if not data["days"]:
            raise ValidationFailed({"days": _("日程を少なくとも1日入力してください。")})
        days = build_days(data["days"])
    span_errors: dict[str, str] = {}
    if days:
        try:
            data = _span_from_days(days, data)
        except ValidationFailed as exc:
            span_errors = exc.fields
    try:
        apply_event_fields(event, data, creating=True)
    except ValidationFailed as exc:  # report every problem at once
        raise ValidationFailed({**exc.fields, **span_errors}) from exc
    if span_errors:
        raise ValidationFailed(span_errors)
    event.days = days or default_days(event.starts_at, event.ends_at)
    event.questions = build_questions(data.get("questions") or [])
    db.session.add(event)
    db.session.flush()
    return event


def update_event(event_id: int, data: dict) -> Event:
    """Change an event under its lock: capacity changes re-check confirmed seats and promote.

    Days are the source of truth for when the event happens: with `days`, starts_at/ends_at follow
    them; without, a one-day event's day follows starts_at/ends_at, and a multi-day event may only be
    moved as a whole (same length: every day shifts) — changing its length needs `days` (422 otherwise).
    """
    event = lock_event(event_id)
    if event.status == "cancelled" and data.get("status", "cancelled") != "cancelled":
        raise DomainError("event_cancelled", _("中止したイベントは公開・非公開に戻せません。"))
    counts = counts_for(event.id)
    capacity = data.get("capacity")
    # Staff may have confirmed past the capacity (確定にする, walk-ins): saving other fields must still
    # work, so only a *lower* capacity below the confirmed count is refused.
    if (isinstance(capacity, int) and capacity < counts.confirmed and capacity < event.capacity):
        raise ValidationFailed({"capacity": _("定員を参加確定者数(%(confirmed)s名)より少なくはできません。先に参加者をキャンセルしてください。",
                                              confirmed=counts.confirmed)})
    new_days = None
    if data.get("days") is not None:  # None: days unchanged
        if not data["days"]:
            raise ValidationFailed({"days": _("日程を少なくとも1日入力してください。")})
        new_days = build_days(data["days"])
        data = _span_from_days(new_days, data)
    elif len(event.days) > 1 and ("starts_at" in data or "ends_at" in data):
        starts, ends = _aware(data.get("starts_at") or event.starts_at), _aware(data.get("ends_at") or event.ends_at)
        # Within a minute: the staff form's datetime-local fields carry no seconds.
        if abs((ends - starts) - (event.ends_at - event.starts_at)) >= timedelta(minutes=1):
            field = "ends_at" if "ends_at" in data else "starts_at"
            raise ValidationFailed({field: _("複数日のイベントの期間は日程(days)で変更してください(開始・終了日時は日程から決まります)。開始・終了を同じ長さでずらすと、全日程が一緒に移動します。")})
    before = calendar.snapshot(event)
    old_start, old_end, was_published = event.starts_at, event.ends_at, event.status == "published"
    apply_event_fields(event, data, creating=False)
    if new_days is not None:
        replace_days_in_place(event, new_days)
    else:
        _move_days_with_event(event, old_start, old_end)
    if event.days and (event.starts_at, event.ends_at) != days_span(event.days):
        event.starts_at, event.ends_at = days_span(event.days)  # the days decide (seconds of a move)
    if was_published and abs(event.starts_at - old_start) >= timedelta(minutes=1):
        event.previous_starts_at = old_start  # 日程変更: the page and its schema.org data say so
    db.session.flush()
    # Before promotions: people promoted below get the new invite with their promotion mail.
    calendar.notify_event_change(event, before)
    if event.status == "published":
        fill_free_seats(event)
    return event


def _move_days_with_event(event: Event, old_start: datetime, old_end: datetime) -> None:
    """Keep days (edited in place: check-ins refer to them) in step when the event itself moves."""
    if event.starts_at == old_start and event.ends_at == old_end:
        return
    if len(event.days) <= 1:  # a one-day event: the day is the event
        if event.days:
            event.days[0].starts_at, event.days[0].ends_at = event.starts_at, event.ends_at
        else:
            event.days = default_days(event.starts_at, event.ends_at)
        return
    shift = event.starts_at - old_start
    if shift:
        for day in event.days:
            day.starts_at, day.ends_at = day.starts_at + shift, day.ends_at + shift


def days_with_checkins(day_ids: list[int]) -> set[int]:
    """Days that have check-ins recorded: removing them would delete attendance (ON DELETE CASCADE)."""
    from ..models import CheckIn

    if not day_ids:
        return set()
    return set(db.session.execute(
        select(CheckIn.event_day_id).where(CheckIn.event_day_id.in_(day_ids)).distinct()).scalars())


def replace_days_in_place(event: Event, new_days: list[EventDay]) -> None:
    """Give the event `new_days`, keeping the existing day rows (in order) so check-ins stay attached.

    Surplus days are removed only when nobody was checked in on them.
    """
    current = list(event.days)
    surplus = current[len(new_days):]
    blocked = days_with_checkins([d.id for d in surplus if d.id is not None])
    if blocked:
        raise ValidationFailed({"days": "受付(チェックイン)記録がある日程は削除できません。"})
    for day, new in zip(current, new_days, strict=False):
        day.starts_at, day.ends_at, day.title = new.starts_at, new.ends_at, new.title
        day.items = list(new.items)
    for day in surplus:
        event.days.remove(day)
    for new in new_days[len(current):]:
        event.days.append(new)


def build_days(days: list[dict]) -> list[EventDay]:
    result, errors = [], {}
    for index, raw in enumerate(days):
        starts, ends = _aware(raw.get("starts_at")), _aware(raw.get("ends_at"))
        if not starts or not ends or ends <= starts or not in_year_range(starts) or not in_year_range(ends):
            errors[f"days.{index}"] = _("日程の開始・終了時刻を確認してください。")
            continue
        day = EventDay(starts_at=starts, ends_at=ends,
                       title=text.check(errors, f"days.{index}.title", raw.get("title"), limit=DAY_TITLE_LIMIT))
        for position, item in enumerate(raw.get("items") or []):
            where = f"days.{index}.items.{position}"
            title = text.check(errors, where, item.get("title"), limit=ITEM_TITLE_LIMIT)
            place = text.check(errors, where, item.get("place"), limit=ITEM_PLACE_LIMIT)
            if not title or not isinstance(item.get("starts_at"), time):
                errors.setdefault(where, _("プログラムの時刻とタイトルを入力してください。"))
                continue
            day.items.append(ProgrammeItem(starts_at=item["starts_at"], ends_at=item.get("ends_at"),
                                           title=title, place=place, position=position))
        result.append(day)
    if errors:
        raise ValidationFailed(errors)
    return result


def build_questions(questions: list[dict]) -> list[Question]:
    result, errors, keys = [], {}, set()
    for position, raw in enumerate(questions):
        where = f"questions.{position}"
        key = text.check(errors, where, raw.get("key"), limit=QUESTION_KEY_LIMIT) or f"q{position + 1}"
        kind = raw.get("kind", "text")
        label = text.check(errors, where, raw.get("label"), limit=QUESTION_LABEL_LIMIT)
        help_text = text.check(errors, where, raw.get("help_text"), limit=QUESTION_HELP_LIMIT)
        choices = [c for c in (text.check(errors, where, c, limit=CHOICE_LIMIT) for c in raw.get("choices") or [])
                   if c]
        if kind not in QUESTION_KINDS or not label or key in keys or (kind == "choice" and not choices):
            errors.setdefault(where, _("設問の種類・文言・選択肢を確認してください。"))
            continue
        keys.add(key)
        result.append(Question(key=key, kind=kind, label=label, help_text=help_text,
                               required=bool(raw.get("required")),
                               important=bool(raw.get("important")), choices=choices, position=position))
    if errors:
        raise ValidationFailed(errors)
    return result


PAST_EVENTS_SHOWN = 12


@dataclass
class Catalogue:
    upcoming: list[Event]
    past: list[Event]
    counts: dict[int, Counts]  # upcoming events only: past ones show no seat state


def catalogue(kind: str | None, now: datetime | None = None) -> Catalogue:
    """The public list: every event not over yet (with its seat counts, counted in the same query) and
    the latest PAST_EVENTS_SHOWN past ones, limited in SQL."""
    now = now or utcnow()
    visible = [Event.status != "draft"] + ([Event.kind == kind] if kind else [])
    rows = db.session.execute(select(Event, *count_columns()).where(*visible, Event.ends_at >= now)
                              .order_by(Event.starts_at, Event.id)).all()
    past = db.session.execute(select(Event).where(*visible, Event.ends_at < now)
                              .order_by(Event.starts_at.desc(), Event.id.desc()).limit(PAST_EVENTS_SHOWN)).scalars().all()
    return Catalogue([e for e, _, _ in rows], list(past), {e.id: Counts(c, w) for e, c, w in rows})


API_EVENTS_PER_PAGE = 100


@dataclass
class PublishedPage:
    rows: list[tuple[Event, Counts]]
    page: int
    pages: int
    per_page: int
    total: int


def published_page(kind: str | None, page: int) -> PublishedPage:
    """`GET /api/v1/events`: published events soonest first, API_EVENTS_PER_PAGE a page, with their seat
    counts in the same statement (the whole history in one answer grew without bound)."""
    where = [Event.status == "published"] + ([Event.kind == kind] if kind else [])
    total = db.session.execute(select(func.count()).select_from(Event).where(*where)).scalar()
    per_page = API_EVENTS_PER_PAGE
    pages = max(1, -(-total // per_page))
    # The payload lists days, programme and questions: eager-loaded for the page (no lazy load per event).
    rows = db.session.execute(select(Event, *count_columns()).where(*where).order_by(Event.starts_at, Event.id)
                              .limit(per_page).offset((min(page, pages) - 1) * per_page)
                              .options(selectinload(Event.days).selectinload(EventDay.items),
                                       selectinload(Event.questions))).all()
    return PublishedPage([(e, Counts(c, w)) for e, c, w in rows], min(page, pages), pages, per_page, total)
