"""Staff workflows on whole events: duplicate, publish/unpublish, cancel, edit days and questions.

Plain field edits and capacity changes go through `events.update_event`; these functions add what the
back-office needs on top and, like every service, never commit.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from ..extensions import db
from ..formatting import JST
from ..models import QUESTION_KINDS, Event, EventDay, ProgrammeItem, Question, Registration
from ..models.base import utcnow
from . import audit, calendar, mail, text
from .capacity import counts_for, lock_event
from .errors import DomainError, NotFound, ValidationFailed
from .events import (
    CHOICE_LIMIT,
    DAY_TITLE_LIMIT,
    ITEM_PLACE_LIMIT,
    ITEM_TITLE_LIMIT,
    QUESTION_HELP_LIMIT,
    QUESTION_KEY_LIMIT,
    QUESTION_LABEL_LIMIT,
    TEXT_FIELDS,
    TIME_FIELDS,
    apply_event_fields,
    days_span,
    days_with_checkins,
)
from .people import clean_text
from .registration import fill_free_seats

COPIED_FIELDS = (*TEXT_FIELDS, "kind", "capacity", "fee_yen", "max_companions", "latitude", "longitude", "reminders")


def get_event(event_id: int) -> Event:
    event = db.session.get(Event, event_id)
    if event is None:
        raise NotFound("event_not_found", "イベントが見つかりません。")
    return event


def duplicate_event(event_id: int, *, slug: str, title: str | None = None, shift_days: int | None = None,
                    new_start: datetime | None = None) -> Event:
    """Copy an event as a draft (e.g. last year's fieldwork), all dates shifted by the same amount.

    Give either `shift_days` or `new_start` (the copy's start; the shift is derived from it).
    Days, programme items and active questions are copied; registrations are not.
    """
    source = get_event(event_id)
    if new_start is not None:
        if new_start.tzinfo is None:
            new_start = new_start.replace(tzinfo=JST)
        shift = new_start - source.starts_at
    elif shift_days is not None:
        if abs(shift_days) > 36_600:  # a century either way; more overflows date arithmetic
            raise ValidationFailed({"shift": "ずらす日数が大きすぎます。"})
        shift = timedelta(days=shift_days)
    else:
        raise ValidationFailed({"shift": "ずらす日数か新しい開始日を入力してください。"})

    copy = Event(status="draft", sequence=0)
    data = {field: getattr(source, field) for field in COPIED_FIELDS}
    try:
        for field in TIME_FIELDS:
            value = getattr(source, field)
            data[field] = value + shift if value is not None else None
    except OverflowError as exc:  # a new start near year 1 or 9999
        raise ValidationFailed({"new_start": "新しい開始日時を確認してください。"}) from exc
    data.update(slug=slug, title=text.normalise(title) or source.title, status="draft")
    apply_event_fields(copy, data, creating=True)
    copy.days = [
        EventDay(starts_at=day.starts_at + shift, ends_at=day.ends_at + shift, title=day.title,
                 items=[ProgrammeItem(starts_at=i.starts_at, ends_at=i.ends_at, title=i.title, place=i.place,
                                      position=i.position) for i in day.items])
        for day in source.days
    ]
    copy.questions = [
        Question(key=q.key, kind=q.kind, label=q.label, help_text=q.help_text, required=q.required,
                 important=q.important,
                 choices=list(q.choices or []), position=n)
        for n, q in enumerate(source.active_questions)
    ]
    db.session.add(copy)
    db.session.flush()
    audit.record("duplicate", "event", copy.id, f"「{source.title}」(ID {source.id})を複製: {copy.slug}",
                 {"source_id": source.id, "shift_days": shift.total_seconds() / 86400})
    return copy


def set_status(event_id: int, status: str) -> Event:
    """Publish (and fill free seats) or take back to draft. Cancelling is `cancel_event`."""
    if status not in ("published", "draft"):
        raise ValidationFailed({"status": "公開か非公開を選んでください。"})
    event = lock_event(event_id)
    if event.status == "cancelled":
        raise DomainError("event_cancelled", "中止したイベントは公開・非公開を切り替えられません。")
    if event.status == status:
        return event
    apply_event_fields(event, {"status": status}, creating=False)
    db.session.flush()
    if status == "published":
        fill_free_seats(event)
    audit.record("publish" if status == "published" else "unpublish", "event", event.id, event.title)
    return event


def cancel_event(event_id: int, *, reason: str = "", now: datetime | None = None) -> list[Registration]:
    """Call the event off: every active registration is cancelled and its person notified by mail."""
    now = now or utcnow()
    event = lock_event(event_id)
    if event.status == "cancelled":
        raise DomainError("already_cancelled", "このイベントは既に中止になっています。")
    reason = clean_text(reason, multiline=True)[:2000]
    apply_event_fields(event, {"status": "cancelled"}, creating=False)
    active = db.session.execute(
        select(Registration).where(Registration.event_id == event.id, Registration.status != "cancelled")
        .order_by(Registration.id)
    ).scalars().all()
    ids = {r.id for r in active}
    for registration in active:
        registration.status = "cancelled"
        registration.cancelled_at = now
        registration.cancelled_by = "event"
        if registration.lead_registration_id not in ids:  # the lead's mail tells the group (one address)
            mail.queue_registration_mail("event_cancelled", registration, reason=reason)
    db.session.flush()
    audit.record("cancel", "event", event.id, f"{event.title}(申込 {len(active)}件をキャンセル・通知)",
                 {"reason": reason, "registrations": [r.id for r in active]})
    return list(active)


def update_days(event_id: int, rows: list[dict]) -> Event:
    """Edit days in place (check-ins refer to them): rows with `id` change or (`remove`) go, others are added.

    Each row: id, starts_at, ends_at, title, items [{starts_at, ends_at, title, place}], remove.
    """
    event = lock_event(event_id)
    before = calendar.snapshot(event)
    by_id = {day.id: day for day in event.days}
    errors: dict[str, str] = {}
    kept = 0
    for index, row in enumerate(rows):
        day = by_id.get(row.get("id")) if row.get("id") else None
        if row.get("id") and day is None:
            errors[f"days.{index}"] = "この日程は見つかりません。ページを再読み込みしてください。"
            continue
        if row.get("remove"):
            if day is not None and days_with_checkins([day.id]):
                errors[f"days.{index}"] = "受付(チェックイン)記録がある日程は削除できません。"
            elif day is not None:
                event.days.remove(day)
            continue
        starts, ends = row.get("starts_at"), row.get("ends_at")
        if not starts or not ends:
            errors[f"days.{index}"] = "日付と開始・終了時刻を入力してください。"
            continue
        if ends <= starts:
            errors[f"days.{index}"] = "終了時刻は開始時刻より後にしてください。"
            continue
        items = []
        for position, item in enumerate(row.get("items") or []):
            title = text.check(errors, f"days.{index}", item.get("title"), limit=ITEM_TITLE_LIMIT)
            place = text.check(errors, f"days.{index}", item.get("place"), limit=ITEM_PLACE_LIMIT)
            if item.get("ends_at") and item["ends_at"] <= item["starts_at"]:
                errors[f"days.{index}"] = f"プログラム「{title}」の終了は開始より後にしてください。"
            items.append(ProgrammeItem(starts_at=item["starts_at"], ends_at=item.get("ends_at"),
                                       title=title, place=place, position=position))
        day_title = text.check(errors, f"days.{index}", row.get("title"), limit=DAY_TITLE_LIMIT)
        if f"days.{index}" in errors:
            continue  # nothing of a refused row reaches the session (a later query would flush it)
        if day is None:
            day = EventDay()
            event.days.append(day)
        day.starts_at, day.ends_at = starts, ends
        day.title = day_title
        day.items = items
        kept += 1
    if not kept and not errors:
        errors["days"] = "日程を少なくとも1日残してください。"
    if errors:
        raise ValidationFailed(errors)
    # Days are the source of truth: the event's start and end (lists, pages, API) follow them.
    starts, ends = days_span(event.days)
    try:
        apply_event_fields(event, {"starts_at": starts, "ends_at": ends}, creating=False)
    except ValidationFailed as exc:  # e.g. the 申込締切 now falls after the last day
        raise ValidationFailed({"days": " ".join(exc.fields.values())}) from exc
    db.session.flush()
    calendar.notify_event_change(event, before)  # moved days: higher SEQUENCE, updated invites
    audit.record("update", "event", event.id, f"{event.title}: 日程・プログラムを変更",
                 {"days": len(event.days)})
    return event


_KEY_RE = re.compile(r"[^a-z0-9_]+")


def update_questions(event_id: int, rows: list[dict]) -> Event:
    """Edit, reorder, add and remove sign-up questions.

    Removing deactivates the question, so answers already given stay (and stay readable in exports).
    Each row: id, label, kind, choices (list), required, important, help_text, position, remove.
    """
    event = lock_event(event_id)
    by_id = {q.id: q for q in event.questions}
    errors: dict[str, str] = {}
    keys = {q.key for q in event.questions}
    revived: set[Question] = set()
    ordered: list[tuple[float, int, Question]] = []
    for index, row in enumerate(rows):
        question = by_id.get(row.get("id")) if row.get("id") else None
        if row.get("id") and question is None:
            errors[f"questions.{index}"] = "この設問は見つかりません。ページを再読み込みしてください。"
            continue
        where = f"questions.{index}"
        label = text.check(errors, where, row.get("label"), limit=QUESTION_LABEL_LIMIT)
        help_text = text.check(errors, where, row.get("help_text"), limit=QUESTION_HELP_LIMIT)
        if question is None and not label:
            continue  # the empty "add a question" row
        if row.get("remove"):
            if question is not None:
                question.is_active = False
            continue
        kind = row.get("kind") or "text"
        choices = [c for c in (text.check(errors, where, c, limit=CHOICE_LIMIT) for c in row.get("choices") or [])
                   if c]
        if where in errors:
            continue
        if not label:
            errors[f"questions.{index}"] = "設問の文言を入力してください。"
            continue
        if kind not in QUESTION_KINDS:
            errors[f"questions.{index}"] = "設問の種類を選んでください。"
            continue
        if kind == "choice" and len(choices) < 2:
            errors[f"questions.{index}"] = f"「{label}」: 選択肢を2つ以上入力してください(1行に1つ)。"
            continue
        wanted_key = _KEY_RE.sub("_", (row.get("key") or "").lower()).strip("_")[:QUESTION_KEY_LIMIT]
        if question is None:
            # Adding back a removed question (same key, or same text without a key) revives it: its
            # old answers come back and the participant filter lists it once.
            question = next((q for q in event.questions if not q.is_active and q not in revived and (
                q.key == wanted_key if wanted_key else q.label == label)), None)
            if question is not None:
                revived.add(question)
            else:
                key = wanted_key[:QUESTION_KEY_LIMIT - 8] or f"q{len(keys) + 1}"
                while key in keys:  # (room left above for this suffix: the key fits its column)
                    key = f"{key}_{len(keys) + 1}"
                keys.add(key)
                question = Question(key=key)
                event.questions.append(question)
        elif wanted_key and wanted_key != question.key:
            # The key (記号名) can change after saving: rosters (bus, lodging, dietary) read it.
            holder = next((q for q in event.questions if q.key == wanted_key), None)
            if holder is not None:
                errors[f"questions.{index}"] = (
                    f"記号名「{wanted_key}」は設問「{holder.label}」{'(削除済み)' if not holder.is_active else ''}が使っています。")
                continue
            keys.discard(question.key)
            keys.add(wanted_key)
            question.key = wanted_key
        question.label = label
        question.kind = kind
        question.choices = choices if kind == "choice" else []
        question.required = bool(row.get("required"))
        question.important = bool(row.get("important"))
        question.help_text = help_text
        question.is_active = True
        ordered.append((row.get("position") if row.get("position") is not None else index, index, question))
    if errors:
        raise ValidationFailed(errors)
    # Active questions are renumbered 0..n in the requested order; inactive ones go after them.
    ordered.sort(key=lambda t: (t[0], t[1]))
    for position, (_, _, question) in enumerate(ordered):
        question.position = position
    for n, question in enumerate(q for q in event.questions if not q.is_active):
        question.position = len(ordered) + n
    db.session.flush()
    audit.record("update", "event", event.id, f"{event.title}: 設問を変更",
                 {"active_questions": [q.key for _, _, q in ordered]})
    return event


def change_event(event_id: int, data: dict) -> tuple[Event, int]:
    """Edit plain fields, audit-logged with the diff. Returns the event and how many waitlisted people a
    capacity increase promoted (FIFO)."""
    from .events import update_event

    event = get_event(event_id)
    before = {field: _plain(getattr(event, field)) for field in data if hasattr(event, field)}
    before_confirmed = counts_for(event_id).confirmed
    event = update_event(event_id, data)
    after = {field: _plain(getattr(event, field)) for field in before}
    changed = {f: [before[f], after[f]] for f in before if before[f] != after[f]}
    promoted = counts_for(event_id).confirmed - before_confirmed
    if changed or promoted:  # saving an unchanged form leaves no noise in the log
        audit.record("update", "event", event.id, f"{event.title}: {', '.join(changed)}",
                     {"changed": changed, "promoted": promoted})
    return event, promoted


def _plain(value):
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def create(data: dict) -> Event:
    """Create an event (as a draft unless told otherwise), audit-logged."""
    from .events import create_event

    event = create_event(data)
    audit.record("create", "event", event.id, f"{event.title}({event.slug})")
    return event
