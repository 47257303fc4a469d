"""抽選 (lottery) allocation: applications until the draw time, then one draw that picks the winners.

The draw is re-derivable: its order is a pure function of the stored seed and inputs (`draw_order`),
each group ranked by HMAC-SHA256(seed, group id), so anyone with the audit entry can recompute it and
see that neither application time nor id order decided. Groups (a lead and its companions) are drawn
as one: all of them win or none. A priority round (staff flag per application, or attendance of an
event linked through the matching access rules) is drawn first.

`draw` locks the event (capacity.lock_event) and refuses a second draw (`already_drawn`), so the
scheduled pass, the CLI, the staff button and the API may race: exactly one of them draws.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import select

from ..database import write_intent
from ..extensions import db
from ..models import Event, Registration, User
from ..models.base import utcnow
from . import audit, mail
from .capacity import counts_for, lock_event
from .errors import DomainError, NotFound

SEED_BYTES = 32
NEXT_EVENTS = 3  # upcoming events a not-selected applicant is pointed to


@dataclass(frozen=True)
class DrawResult:
    event_id: int
    seed: str
    won: int
    waitlisted: int
    not_selected: int

    def as_dict(self) -> dict:
        return {"event_id": self.event_id, "seed": self.seed, "won": self.won, "waitlisted": self.waitlisted,
                "not_selected": self.not_selected}


def _rank(key: bytes, group_id: int) -> bytes:
    return hmac.new(key, str(group_id).encode(), hashlib.sha256).digest()


def draw_order(seed: str, group_ids: Iterable[int], priority_ids: Iterable[int] = ()) -> list[int]:
    """The drawn order of the groups: the priority round first, each round ranked by HMAC(seed, id).

    Pure and deterministic: the same seed and inputs give the same order, whatever order they come in."""
    key = bytes.fromhex(seed)
    priority = set(priority_ids)
    ids = set(group_ids)
    first = sorted(ids & priority, key=lambda gid: _rank(key, gid))
    rest = sorted(ids - priority, key=lambda gid: _rank(key, gid))
    return first + rest


def pick(order: Sequence[int], sizes: dict[int, int], seats: int) -> tuple[list[int], list[int]]:
    """Winners and the others (both in drawn order): each group in turn wins if all of it fits in the
    seats still free; a group too large is passed over (it never gets part of its seats)."""
    won, lost = [], []
    free = max(seats, 0)
    for gid in order:
        if sizes[gid] <= free:
            won.append(gid)
            free -= sizes[gid]
        else:
            lost.append(gid)
    return won, lost


def _group_key(registration: Registration) -> int:
    return registration.lead_registration_id or registration.id


def _attendee_person_ids(event: Event) -> set[int]:
    """People who attended an event linked to this one (matching access rules); empty without links."""
    from . import attendance
    from .matching import linked_events, links_for

    if not links_for(event.id):
        return set()
    ids = [e.id for e in linked_events(event)]
    return attendance.attended_person_ids(ids) if ids else set()


def _next_events(event: Event, now: datetime) -> list[Event]:
    return list(db.session.execute(
        select(Event).where(Event.status == "published", Event.id != event.id, Event.starts_at > now)
        .order_by(Event.starts_at).limit(NEXT_EVENTS)).scalars())


def _mail_group(kind: str, members: list[Registration], **extra) -> None:
    """One mail to the lead listing its companions; companions whose lead is not drawn get their own."""
    lead = next((r for r in members if r.lead_registration_id is None), None)
    if lead is not None:
        mail.queue_registration_mail(kind, lead, companions=[r for r in members if r is not lead], **extra)
    else:
        for registration in members:
            mail.queue_registration_mail(kind, registration, **extra)


def draw(event_id: int, now: datetime | None = None, seed: str | None = None, *, user: User | None = None,
         actor: str | None = None) -> DrawResult:
    """Draw the event's lottery once (caller commits). Raises `not_lottery` or `already_drawn`."""
    event = lock_event(event_id)
    if event.allocation != "lottery":
        raise DomainError("not_lottery", _("このイベントは抽選ではありません。"))
    if event.lottery_drawn_at is not None:
        raise DomainError("already_drawn", _("このイベントの抽選は既に行われています。"))
    if event.status == "cancelled":
        raise DomainError("event_cancelled", _("このイベントは中止になりました。"))
    now = now or utcnow()
    seed = seed or secrets.token_hex(SEED_BYTES)
    applicants = list(db.session.execute(
        select(Registration).where(Registration.event_id == event.id, Registration.status == "applied")
        .order_by(Registration.id)).scalars())
    groups: dict[int, list[Registration]] = {}
    for registration in applicants:
        groups.setdefault(_group_key(registration), []).append(registration)
    attendees = _attendee_person_ids(event)
    priority = sorted(gid for gid, members in groups.items()
                      if any(r.lottery_priority or r.person_id in attendees for r in members))
    seats = event.capacity - counts_for(event.id).confirmed
    order = draw_order(seed, groups, priority)
    won, lost = pick(order, {gid: len(members) for gid, members in groups.items()}, seats)

    for gid in won:
        for registration in groups[gid]:
            registration.status, registration.confirmed_at = "confirmed", now
    waitlist = event.lottery_losers == "waitlist"
    lost_rows = [r for gid in lost for r in groups[gid]]
    for i, gid in enumerate(lost):
        for registration in groups[gid]:
            if waitlist:
                # Just before `now`, in drawn order: FIFO promotion (waitlisted_at, id) follows the draw
                # and every later sign-up (at `now` or after) queues behind.
                registration.status = "waitlisted"
                registration.waitlisted_at = now - timedelta(microseconds=len(lost) - i)
            else:
                registration.status = "not_selected"
    event.lottery_drawn_at = now
    event.lottery_seed = seed
    record = {"seed": seed, "seats": seats, "applicants": [r.id for r in applicants],
              "groups": {str(gid): [r.id for r in members] for gid, members in groups.items()},
              "priority": priority, "order": order, "won": won, "losers": event.lottery_losers}
    event.lottery_record = record
    db.session.flush()
    audit.record("lottery_draw", "event", event.id,
                 f"抽選: 応募{len(applicants)}名、当選{sum(len(groups[g]) for g in won)}名 ({event.title})",
                 record, user=user, actor=actor)

    for gid in won:
        _mail_group("registration_confirmed", groups[gid])
    if waitlist:
        position = 1
        for gid in lost:
            _mail_group("registration_waitlisted", groups[gid], waitlist_position=position, lottery=True)
            position += len(groups[gid])
    elif lost:
        upcoming = _next_events(event, now)
        for gid in lost:
            _mail_group("lottery_not_selected", groups[gid], next_events=upcoming)
    n_won = sum(len(groups[g]) for g in won)
    return DrawResult(event.id, seed, n_won, len(lost_rows) if waitlist else 0, 0 if waitlist else len(lost_rows))


def set_priority(registration_id: int, priority: bool) -> Registration:
    """Staff give (or take back) an application the first round of the draw; the whole group shares it."""
    registration = db.session.get(Registration, registration_id)
    if registration is None:
        raise NotFound("registration_not_found", _("お申し込みが見つかりません。"))
    event = lock_event(registration.event_id)
    db.session.refresh(registration)
    if event.lottery_drawn_at is not None:
        raise DomainError("already_drawn", _("このイベントの抽選は既に行われています。"))
    if registration.status != "applied":
        raise DomainError("not_applied", _("抽選に応募中のお申し込みだけに優先枠を設定できます。"))
    registration.lottery_priority = priority
    audit.record("lottery_priority", "registration", registration.id,
                 f"{registration.name}: 抽選の優先枠を{'設定' if priority else '解除'}", {"priority": priority})
    return registration


def replay(event: Event) -> tuple[list[int], list[int]]:
    """Recompute a drawn lottery's (winners, others) from its stored seed and inputs (for a fairness check)."""
    record = event.lottery_record or {}
    groups = {int(gid): members for gid, members in record.get("groups", {}).items()}
    order = draw_order(record["seed"], groups, record.get("priority", []))
    return pick(order, {gid: len(m) for gid, m in groups.items()}, record["seats"])


def due_lottery_ids(now: datetime) -> list[int]:
    return list(db.session.execute(
        select(Event.id).where(Event.allocation == "lottery", Event.status == "published",
                               Event.lottery_drawn_at.is_(None), Event.lottery_draw_at <= now)
        .order_by(Event.lottery_draw_at, Event.id)).scalars())


def draw_due_lotteries(now: datetime) -> int:
    """Scheduled pass: draw every published lottery whose draw time has passed and that is not drawn.
    Returns how many registrations were drawn (each got or shares a result mail); never commits.

    Safe twice at once: the event's lock and the drawn check let one pass draw, the other skips."""
    ids = due_lottery_ids(now)
    db.session.rollback()  # end the read so the writes below begin with the write lock (SQLite)
    if not ids:
        return 0
    drawn = 0
    with write_intent():
        for event_id in ids:
            try:
                result = draw(event_id, now, actor="system")
            except DomainError as exc:
                if exc.code == "already_drawn":
                    continue  # another pass (cron beside the sender) drew it just now
                raise
            drawn += result.won + result.waitlisted + result.not_selected
    return drawn
