"""Turning submitted staff forms into the plain dicts the services take (and back for redisplay).

Parsing problems become field errors in the same shape as `ValidationFailed.fields`, so a form shows
parse errors and service errors the same way.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

from werkzeug.datastructures import MultiDict

from ..formatting import JST, to_jst
from ..models import Event
from ..params import parse_int as bounded_int
from ..services.calendar import event_alarms
from ..services.reminders import event_reminders

EVENT_TEXT = ("title", "summary", "description", "venue_name", "venue_address", "meeting_point", "access",
              "online_url", "what_to_bring", "organiser_name", "organiser_email", "organiser_phone",
              "title_en", "summary_en", "description_en")
EVENT_DATETIMES = {"starts_at": "開始日時", "ends_at": "終了日時", "registration_opens_at": "受付開始",
                   "registration_closes_at": "申込締切", "cancellation_deadline": "キャンセル期限",
                   "roster_freeze_at": "名簿確定(繰り上げ停止)",
                   "checkin_opens_at": "当日受付の開始", "checkin_closes_at": "当日受付の終了",
                   "online_url_reveal_at": "参加URLの公開(オンライン)",
                   "meeting_at": "集合日時", "dismissal_at": "解散日時", "lottery_draw_at": "抽選日時"}
REQUIRED_DATETIMES = ("starts_at", "ends_at")


def parse_datetime(text: str) -> datetime | None:
    """`2025-11-08T13:00` from <input type=datetime-local> (JST)."""
    text = (text or "").strip()
    if not text:
        return None
    for fmt in ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=JST)
        except ValueError:
            continue
    raise ValueError(text)


def parse_int(text: str) -> int:
    return int((text or "").strip().replace(",", ""))


def event_data(form: MultiDict) -> tuple[dict, dict[str, str]]:
    data: dict = {}
    errors: dict[str, str] = {}
    for field in EVENT_TEXT:
        if field in form:
            data[field] = form.get(field, "")
    for field in ("slug", "kind"):
        if field in form:
            data[field] = form.get(field, "").strip()
    for field, label in EVENT_DATETIMES.items():
        if field not in form:
            continue
        try:
            data[field] = parse_datetime(form.get(field))
        except ValueError:
            errors[field] = f"{label}の日時の形式が正しくありません。"
        if data.get(field) is None and field in REQUIRED_DATETIMES and field not in errors:
            errors[field] = f"{label}を入力してください。"
    for field, label in (("capacity", "定員"), ("fee_yen", "参加費"), ("max_companions", "同行者の上限")):
        if field in form:
            try:
                data[field] = parse_int(form.get(field) or ("" if field == "capacity" else "0"))
            except ValueError:
                errors[field] = f"{label}は半角数字で入力してください。"
    for field in ("allocation", "lottery_losers"):  # 先着順/抽選 and what the draw does with the rest
        if field in form:
            data[field] = form.get(field, "").strip()
    if "alarm_mode" in form:
        # 種類の既定 (NULL) or exactly the ticked reminders (none ticked: no reminders).
        data["calendar_alarms"] = None if form.get("alarm_mode") != "custom" else form.getlist("calendar_alarms")
    if "reminder_mode" in form:  # the same choice for reminder mails
        data["reminders"] = None if form.get("reminder_mode") != "custom" else form.getlist("reminders")
    for field in ("latitude", "longitude"):
        if field in form:
            raw = form.get(field, "").strip()
            try:
                data[field] = float(raw) if raw else None
            except ValueError:
                errors[field] = "座標は数値で入力してください(例: 39.3886)。"
    return data, errors


def event_values(event: Event | None, form: MultiDict | None = None) -> dict:
    """What the event form shows: the submitted values after an error, otherwise the event's."""
    if form is not None:
        return dict(form.items(), calendar_alarms=form.getlist("calendar_alarms"), reminders=form.getlist("reminders"))
    if event is None:
        # No companions unless staff allow them: the form's kind can change to a seminar before saving,
        # so a fieldwork-only default would need script; staff type e.g. 3 for a fieldwork.
        return {"kind": "fieldwork", "fee_yen": "0", "capacity": "20", "max_companions": "0",
                "allocation": "first_come", "lottery_losers": "waitlist",
                "alarm_mode": "default", "calendar_alarms": [], "reminder_mode": "default", "reminders": []}
    values = {field: getattr(event, field) or "" for field in (*EVENT_TEXT, "slug", "kind")}
    for field in EVENT_DATETIMES:
        value = getattr(event, field)
        values[field] = to_jst(value).strftime("%Y-%m-%dT%H:%M") if value else ""
    values.update(capacity=str(event.capacity), fee_yen=str(event.fee_yen),
                  max_companions=str(event.max_companions),
                  allocation=event.allocation or "first_come", lottery_losers=event.lottery_losers or "waitlist",
                  latitude="" if event.latitude is None else str(event.latitude),
                  longitude="" if event.longitude is None else str(event.longitude),
                  alarm_mode="default" if event.calendar_alarms is None else "custom",
                  calendar_alarms=list(event_alarms(event)),
                  reminder_mode="default" if event.reminders is None else "custom",
                  reminders=list(event_reminders(event)))
    return values


_ITEM_RE = re.compile(r"^\s*(\d{1,2})[:：](\d{2})\s*(?:[-〜~ー–]\s*(\d{1,2})[:：](\d{2}))?\s+(.+?)\s*$")


def parse_items(text: str) -> list[dict]:
    """One programme item per line: `10:00-11:30 ぶどう収穫体験 @ かんたはうす農園` (end and place optional)."""
    items = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        match = _ITEM_RE.match(line)
        if not match:
            raise ValueError(f"{number}行目「{line.strip()[:30]}」: 「10:00-11:30 内容 @ 場所」の形で入力してください。")
        h1, m1, h2, m2, rest = match.groups()
        try:
            starts = time(int(h1), int(m1))
            ends = time(int(h2), int(m2)) if h2 else None
        except ValueError as exc:
            raise ValueError(f"{number}行目: 時刻が正しくありません。") from exc
        title, _, place = rest.partition(" @ ")
        items.append({"starts_at": starts, "ends_at": ends, "title": title.strip(), "place": place.strip()})
    return items


def format_items(day) -> str:
    lines = []
    for item in day.items:
        when = item.starts_at.strftime("%H:%M") + (f"-{item.ends_at.strftime('%H:%M')}" if item.ends_at else "")
        lines.append(f"{when} {item.title}" + (f" @ {item.place}" if item.place else ""))
    return "\n".join(lines)


def day_rows(form: MultiDict) -> tuple[list[dict], dict[str, str]]:
    """Rows `day-<n>-date/start/end/title/items/remove/id` of the programme form."""
    rows, errors = [], {}
    indexes = sorted({int(k.split("-")[1]) for k in form if re.match(r"^day-\d+-", k)})
    for n in indexes:
        get = lambda f, n=n: (form.get(f"day-{n}-{f}") or "").strip()  # noqa: E731
        row = {"id": int(get("id")) if get("id").isdigit() else None, "remove": bool(get("remove")),
               "title": get("title")}
        if not row["id"] and not get("date") and not get("items"):
            continue  # the empty "add a day" row
        if not row["remove"]:
            try:
                day = date.fromisoformat(get("date"))
                start, end = time.fromisoformat(get("start") or "00:00"), time.fromisoformat(get("end") or "23:59")
                row["starts_at"] = datetime.combine(day, start, JST)
                # An end time before the start means the day runs past midnight (e.g. an evening mixer).
                ends = datetime.combine(day, end, JST)
                row["ends_at"] = ends if ends > row["starts_at"] else ends + timedelta(days=1)
            except ValueError:
                errors[f"days.{len(rows)}"] = "日付・時刻の形式が正しくありません。"
            try:
                row["items"] = parse_items(form.get(f"day-{n}-items", ""))
            except ValueError as exc:
                errors[f"days.{len(rows)}"] = str(exc)
        rows.append(row)
    return rows, errors


def question_rows(form: MultiDict) -> list[dict]:
    rows = []
    indexes = sorted({int(k.split("-")[1]) for k in form if re.match(r"^q-\d{1,4}-", k)})  # rows of the editor
    for n in indexes:
        get = lambda f, n=n: (form.get(f"q-{n}-{f}") or "").strip()  # noqa: E731
        position = get("position")
        rows.append({
            "id": bounded_int(get("id"), None, minimum=1),
            "label": get("label"), "kind": get("kind") or "text", "key": get("key"),
            "choices": [c.strip() for c in form.get(f"q-{n}-choices", "").splitlines() if c.strip()],
            "required": bool(get("required")), "important": bool(get("important")),
            "help_text": get("help_text"), "remove": bool(get("remove")),
            "position": bounded_int(position, None),
        })
    return rows
