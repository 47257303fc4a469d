"""Outbox: mails are queued in the database with the change they report and sent after commit.

Delivery claims a message by bumping `attempts` with a conditional UPDATE before sending, so two
workers never send the same message twice at once; a failed send waits with exponential backoff
and is retried by `flask --app eventapp send-mail` (cron) or the next request that queues mail.

A claim is a short lease (MAIL_LEASE_S, 30 s) on `next_attempt_at`, renewed by a heartbeat thread
while its sender is alive and sending (see `_Heartbeat`); the heartbeat also marks what has gone out
so far. A sender killed mid-batch thus leaves its unsent mails to the next sender within the lease,
and at most one heartbeat's worth of mails is sent again.

A permanent refusal (5xx at RCPT) fails the message at once and marks its address undeliverable
(`undeliverable_addresses`): later mails to it are failed without being attempted until staff clear
the mark (services/outbox.py). Transient failures (4xx, disconnects) are retried with backoff.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from flask import current_app, g
from flask_babel import force_locale
from sqlalchemy import func, insert, inspect, select, tuple_, update
from sqlalchemy.orm import joinedload, make_transient_to_detached

from ..database import column_values, insert_or_skip, write_intent
from ..extensions import db
from ..models import OutboxMessage, Registration, UndeliverableAddress
from ..models.base import utcnow
from .text import column_limit, denest_quotes, fit, single_line

_INSERT_MESSAGE = insert(OutboxMessage.__table__).returning(OutboxMessage.__table__.c.id)
# 「【参加確定】」+ a 300-character title overflowed the column and failed every sign-up on PostgreSQL.
SUBJECT_LIMIT = column_limit(OutboxMessage.subject)
ADDRESS_LIMIT = column_limit(OutboxMessage.to_addr)
LEASE = timedelta(seconds=30)  # default of MAIL_LEASE_S
# Mails whose body is a secret that works on its own (a マイページ sign-in link, stored only hashed
# elsewhere): once sent, the outbox keeps the subject but not the body.
SCRUB_AFTER_SENDING = frozenset({"my_page_link"})
SCRUBBED_BODY = "(送信済み。ログイン用リンクを含むため本文は削除しました)\n"
BATCH = 100  # messages claimed, sent and marked per round of deliver_due
# last_error of a mail not attempted because its address is marked undeliverable.
UNDELIVERABLE_ERROR = "undeliverable address (配信不可として記録されたアドレスのため送信していません)"


def queue(kind: str, to_addr: str, template: str, context: dict, *,
          registration: Registration | None = None, attachments: list[dict] | None = None,
          locale: str = "ja") -> OutboxMessage:
    """Render `templates/mail/<template>.txt` (first line `Subject: …`) in `locale` and add it to the outbox."""
    subject, body = render(template, context, locale=locale)
    values = {"kind": kind, "to_addr": to_addr[:ADDRESS_LIMIT], "subject": subject, "body": body,
              "attachments": attachments or []}
    if registration is None or registration.id is not None:
        # One Core INSERT returning the new id (a sign-up queues its mail while it holds the event's
        # lock: a fraction of the work of adding and flushing the message, or of an ORM insert that
        # gives back the whole row). The caller gets the message detached, as inserted.
        values["registration_id"] = registration and registration.id
        message = OutboxMessage(id=db.session.execute(_INSERT_MESSAGE, values).scalar_one(), **values)
        make_transient_to_detached(message)
    else:  # a registration not yet flushed: the unit of work orders the inserts
        message = OutboxMessage(**values, registration=registration)
        db.session.add(message)
    g.setdefault("outbox_queued", []).append(message)
    return message


def render(template: str, context: dict, *, locale: str = "ja") -> tuple[str, str]:
    """(subject, body) of `templates/mail/<template>.txt`, written in `locale` ('ja' or 'en')."""
    # The mail's language is the recipient's (the registration's locale), never the language the
    # sender happens to browse in: staff in an English session still send a Japanese sign-up Japanese.
    # Straight from the Jinja environment: mail templates use no page context (context processors
    # and render signals are page concerns, and cost a sign-up more than the template itself).
    locale = locale if locale in ("ja", "en") else "ja"
    # Links in English mails open the pages in English (`?lang=en` also sets the language cookie).
    context = {**context, "mail_locale": locale, "mail_lang": {"lang": "en"} if locale == "en" else {}}
    with force_locale(locale):
        rendered = current_app.jinja_env.get_template(f"mail/{template}.txt").render(context)
    first, _, body = rendered.lstrip().partition("\n")
    # The subject is derived text (a label plus the event's title): one line, no quotes inside quotes
    # (a title with its own 「」), shortened with … to its column, so no stored title can overflow it
    # or break the header.
    subject = denest_quotes(single_line(first.removeprefix("Subject:")))
    return fit(subject, SUBJECT_LIMIT), body.strip() + "\n"


def queue_registration_mail(kind: str, registration: Registration, **extra) -> OutboxMessage | None:
    person = registration.person
    to_addr = person.email if person else None
    if not to_addr and registration.lead_registration_id is not None:
        # A companion (同行者) has no address of its own: its mails go to the person who signed the
        # group up, who holds the companion's manage link anyway.
        lead = registration.lead
        to_addr = lead.person.email if lead is not None and lead.person is not None else None
    if not to_addr:
        return None
    context = {"registration": registration, "event": registration.event, "person": person,
               "companions": [], **extra}
    # Written in the language the participant signed up in (a companion's is its group's).
    locale = registration.locale or "ja"
    # Attachments (the calendar invite) are built when the mail is sent, from the outbox row's
    # registration and kind (see build_email): a sign-up then does not pay for them inside its
    # locked transaction, and the invite shows the state at sending time.
    return queue(kind, to_addr, kind, context, registration=registration, locale=locale)


def registration_attachments(message: OutboxMessage) -> list[dict]:
    """Attachments of a registration mail: stored ones (rows queued before they were built at send time) or the hook's."""
    if message.attachments:
        return list(message.attachments)
    hook = current_app.extensions.get("eventapp_mail_attachments")
    if hook is None or message.registration is None:  # e.g. the calendar invite, registered by the calendar module
        return []
    return hook(message.kind, message.registration)


def _lease() -> timedelta:
    return timedelta(seconds=current_app.config.get("MAIL_LEASE_S", LEASE.total_seconds()))


class _Heartbeat:
    """While a sender sends its claimed messages, renew their lease every third of it and mark the ones
    sent so far, on a connection of its own.

    Ownership is (id, attempts) as the claim left it: a message whose lease ran out and that another
    sender claimed (attempts moved on) is not touched. Stops when the block ends (the final mark follows
    at once); a renewal that fails (database restarting) is logged and tried again at the next beat.
    """

    def __init__(self, claims: dict[int, int], *, scrub: set[int] | frozenset[int] = frozenset()) -> None:
        self.claims = dict(claims)  # id → attempts as claimed
        self.scrub = scrub  # ids whose body is removed once sent (SCRUB_AFTER_SENDING)
        self.sent: list[int] = []  # appended by the sending thread (list.append is atomic)
        self._marked = 0
        self._lease = _lease()
        self._engine = db.engine
        self._app = current_app._get_current_object()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mail-lease-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._lease.total_seconds() / 3):
            try:
                self.beat()
            except Exception:
                self._app.logger.exception("mail lease heartbeat failed")

    def beat(self) -> None:
        table = OutboxMessage.__table__
        sent = self.sent[:]
        newly_sent, self._marked = sent[self._marked:], len(sent)
        pending = [(i, a) for i, a in self.claims.items() if i not in set(sent)]
        with write_intent(), self._engine.begin() as conn:
            if newly_sent:
                conn.execute(update(table).where(
                    tuple_(table.c.id, table.c.attempts).in_([(i, self.claims[i]) for i in newly_sent]),
                    table.c.status == "pending").values(status="sent", sent_at=utcnow(), last_error=""))
                if secret := [i for i in newly_sent if i in self.scrub]:
                    conn.execute(update(table).where(table.c.id.in_(secret)).values(body=SCRUBBED_BODY))
            if pending:
                conn.execute(update(table).where(tuple_(table.c.id, table.c.attempts).in_(pending),
                                                 table.c.status == "pending")
                             .values(next_attempt_at=utcnow() + self._lease))


def deliver_due(*, now: datetime | None = None, limit: int = 100) -> tuple[int, int]:
    """Send pending messages whose time has come, in batches. Returns (sent, failed attempts).

    Each batch is claimed with one UPDATE (attempts + 1, a lease on next_attempt_at), sent over one
    SMTP connection and marked sent with one more UPDATE, so a backlog after a sign-up rush costs
    two short write transactions per hundred mails rather than two per mail."""
    now = now or utcnow()
    sent = failed = 0
    while limit > 0:
        ids = db.session.execute(
            select(OutboxMessage.id).where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now)
            .order_by(OutboxMessage.id).limit(min(limit, BATCH))
        ).scalars().all()
        db.session.rollback()  # end the read transaction before claiming (SQLite write lock)
        if not ids:
            break
        limit -= len(ids)
        batch_sent, batch_failed = _deliver_batch(ids, now)
        sent, failed = sent + batch_sent, failed + batch_failed
        if len(ids) < BATCH:
            break
    return sent, failed


def _deliver_batch(ids: list[int], now: datetime) -> tuple[int, int]:
    table = OutboxMessage.__table__
    with write_intent():
        # Only rows still pending and due: one another sender claimed meanwhile carries its lease.
        claimed = dict(db.session.execute(
            update(table).where(table.c.id.in_(ids), table.c.status == "pending", table.c.next_attempt_at <= now)
            .values(attempts=table.c.attempts + 1, next_attempt_at=now + _lease())
            .returning(table.c.id, table.c.attempts)
        ).all())
        db.session.commit()
    if not claimed:
        return 0, 0
    messages = db.session.execute(
        select(OutboxMessage).where(OutboxMessage.id.in_(claimed)).order_by(OutboxMessage.id)
        .options(joinedload(OutboxMessage.registration).joinedload(Registration.event),
                 joinedload(OutboxMessage.registration).joinedload(Registration.person))  # the invite's address
        .execution_options(populate_existing=True)
    ).scalars().all()
    errors: dict[int, Failure] = {}
    scrub = {m.id for m in messages if m.kind in SCRUB_AFTER_SENDING}
    blocked = undeliverable_among(m.to_addr for m in messages)
    with _Heartbeat(claimed, scrub=scrub) as heartbeat:
        with _transport() as send:
            for message in messages:
                if normalise_address(message.to_addr) in blocked:
                    errors[message.id] = Failure(UNDELIVERABLE_ERROR, permanent=True)
                    continue
                try:
                    send(message)
                    heartbeat.sent.append(message.id)
                except Exception as exc:  # a transient failure is retried later, a permanent one ends now
                    errors[message.id] = failure = classify_failure(exc, message.to_addr)
                    if failure.bounced:  # the batch's other mails to it are not attempted either
                        blocked.add(failure.bounced)
        attempts = {message.id: message.attempts for message in messages}
        db.session.rollback()  # end the read so the write below begins with BEGIN IMMEDIATE
        sent_ids = [message_id for message_id in attempts if message_id not in errors]
        with write_intent():
            if sent_ids:
                db.session.execute(update(table).where(table.c.id.in_(sent_ids))
                                   .values(status="sent", sent_at=utcnow(), last_error=""))
                if sent_scrub := [i for i in sent_ids if i in scrub]:
                    db.session.execute(update(table).where(table.c.id.in_(sent_scrub)).values(body=SCRUBBED_BODY))
            for message_id, error in errors.items():
                _record_failure(message_id, attempts[message_id], error)
            db.session.commit()
    return len(sent_ids), len(errors)


@dataclass(frozen=True)
class Failure:
    """Why a send failed, and what follows: `permanent` fails the message at once (no retries);
    `bounced` is the address the server refused permanently, marked undeliverable."""

    error: str
    permanent: bool = False
    bounced: str = ""


def normalise_address(value: str | None) -> str:
    """An outbox address as undeliverable_addresses keeps it (people's addresses are lower-cased too)."""
    return (value or "").strip().lower()


def _reply_text(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return single_line(f"{code} {text}")


def classify_failure(exc: Exception, to_addr: str) -> Failure:
    """A 5xx refusal of the recipient is permanent (the address is marked); everything else —
    4xx replies, disconnects, timeouts, a refused sender (our own configuration) — is transient."""
    error = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = [(code, reply) for code, reply in exc.recipients.values() if 500 <= code < 600]
        if refused:
            reason = _reply_text(*refused[0])
            return Failure(f"{reason} (SMTPRecipientsRefused)", permanent=True, bounced=normalise_address(to_addr))
    elif isinstance(exc, smtplib.SMTPDataError) and 500 <= exc.smtp_code < 600:
        # Refused after DATA: this message is not going to be accepted (content, size), so no
        # retries; the address is marked only when the reply says the mailbox is bad (5.1.x).
        reason = _reply_text(exc.smtp_code, exc.smtp_error)
        enhanced = reason.split(" ")[1] if " " in reason else ""
        return Failure(f"{reason} (SMTPDataError)", permanent=True,
                       bounced=normalise_address(to_addr) if enhanced.startswith("5.1.") else "")
    return Failure(error)


def undeliverable_among(addresses: Iterable[str | None]) -> set[str]:
    """Which of these addresses (normalised) are marked undeliverable."""
    wanted = {normalise_address(a) for a in addresses} - {""}
    if not wanted:
        return set()
    return set(db.session.execute(
        select(UndeliverableAddress.email).where(UndeliverableAddress.email.in_(wanted))).scalars())


_INSERT_UNDELIVERABLE = insert_or_skip(UndeliverableAddress.__table__, conflict="email", returning=["id"])


def mark_undeliverable(email: str, reason: str) -> None:
    """Record a permanent refusal of `email` (first time, or again: last_failed_at and reason move on)."""
    email, reason, now = normalise_address(email), reason[:500], utcnow()
    table = UndeliverableAddress.__table__
    if not db.session.execute(update(table).where(table.c.email == email)
                              .values(reason=reason, last_failed_at=now)).rowcount:
        # Two senders bouncing the same address at once: the second insert is skipped.
        db.session.execute(_INSERT_UNDELIVERABLE, column_values(table, {
            "email": email, "reason": reason, "first_failed_at": now, "last_failed_at": now}))


def _record_failure(message_id: int, attempts: int, failure: Failure) -> None:
    max_attempts = current_app.config["MAIL_MAX_ATTEMPTS"]
    values: dict = {"last_error": failure.error[:2000]}
    if failure.permanent or attempts >= max_attempts:
        values["status"] = "failed"
    else:
        values["next_attempt_at"] = utcnow() + timedelta(minutes=2 ** attempts)
    db.session.execute(update(OutboxMessage.__table__).where(OutboxMessage.__table__.c.id == message_id)
                       .values(**values))
    if failure.bounced:
        mark_undeliverable(failure.bounced, failure.error)


class RushDetector:
    """Whether mail is being queued faster than `rate` per second right now: a sign-up rush.

    Building and sending a mail costs the sender several times the CPU of queueing it, and even at
    idle CPU priority a sender that keeps up with a rush of a hundred sign-ups per second took the
    idle moments the web workers and PostgreSQL needed, and sign-ups queued up behind it (measured:
    p95 0.4–0.6 s instead of 0.03–0.15 s). So while a rush is on, mail waits, for at most
    `max_defer_s` seconds, then goes out all the same. The rate is read from the outbox's growing ids
    (an index lookup), so every sender process sees the same rush whichever worker queued the mail.
    """

    def __init__(self, rate: float, max_defer_s: float) -> None:
        self.rate = rate
        self.max_defer_s = max_defer_s
        self._last: tuple[int, float] | None = None  # (highest id, when seen)
        self._since: float | None = None  # when the current rush was first seen

    def defer(self, now: float | None = None) -> bool:
        if self.rate <= 0:
            return False
        now = time.monotonic() if now is None else now
        top = db.session.execute(select(func.max(OutboxMessage.id))).scalar() or 0
        db.session.rollback()  # a read only: no transaction left open between rounds
        last, self._last = self._last, (top, now)
        if last is None or now <= last[1]:
            return False
        if (top - last[0]) / (now - last[1]) < self.rate:
            self._since = None
            return False
        if self._since is None:
            self._since = now
        return now - self._since < self.max_defer_s


def watch(*, interval_s: float = 1.0, batch: int = 100, stop: threading.Event | None = None) -> int:
    """Keep sending due mail until `stop` is set (or SIGTERM ends the process): the sender process
    of MAIL_DELIVERY=sender. Polls every `interval_s` when idle, and holds mail back while a sign-up
    rush is on (see RushDetector); returns how many were sent."""
    stop = stop or threading.Event()
    config = current_app.config
    rush = RushDetector(config["MAIL_RUSH_RATE"], config["MAIL_RUSH_MAX_DEFER_S"])
    total = 0
    next_scheduled = 0.0
    while not stop.is_set():
        try:
            if time.monotonic() >= next_scheduled:  # mail due at a time (reminders, join URLs)
                from .scheduled import SCHEDULED_EVERY_S, run_scheduled

                next_scheduled = time.monotonic() + SCHEDULED_EVERY_S
                run_scheduled(utcnow())
            if rush.defer():
                stop.wait(interval_s)
                continue
            sent, failed = deliver_due(limit=batch)
        except Exception:  # the database may be restarting: wait and try again, never exit
            current_app.logger.exception("send-mail --watch: delivery round failed")
            db.session.rollback()
            sent = failed = 0
        finally:
            db.session.remove()
        total += sent
        if sent + failed < batch:  # caught up: wait for more (a full batch goes straight on)
            stop.wait(interval_s)
    return total


def _deliver_one(message_id: int, now: datetime) -> str:
    """Claim, send and mark one message this request has just queued (so never tried yet; the
    claim below still skips it if a sender process took it first)."""
    seen = 0
    with write_intent():
        claimed = db.session.execute(
            update(OutboxMessage).where(OutboxMessage.id == message_id, OutboxMessage.attempts == seen,
                                        OutboxMessage.status == "pending")
            .values(attempts=seen + 1, next_attempt_at=now + _lease())
        ).rowcount
        db.session.commit()
    if not claimed:
        return "skipped"
    # One query for what the mail needs (instead of reloading the expired message, then its
    # registration and event lazily).
    message = db.session.execute(
        select(OutboxMessage).where(OutboxMessage.id == message_id)
        .options(joinedload(OutboxMessage.registration).joinedload(Registration.event))
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if message is None:  # removed since the claim (retention purge, a reset test database): nothing to send
        db.session.rollback()
        return "skipped"
    error: Failure | None = None
    if undeliverable_among([message.to_addr]):
        error = Failure(UNDELIVERABLE_ERROR, permanent=True)
    else:
        try:
            with _Heartbeat({message_id: seen + 1}), _transport() as send:  # a slow SMTP server keeps the claim
                send(message)
        except Exception as exc:  # a transient failure is retried later, a permanent one ends now
            error = classify_failure(exc, message.to_addr)
    attempts, scrub = message.attempts, message.kind in SCRUB_AFTER_SENDING
    # Building the mail reloaded the expired message in a plain (deferred) read transaction; end it
    # so the write below starts with BEGIN IMMEDIATE instead of failing with "database is locked".
    db.session.rollback()
    with write_intent():
        if error is None:
            db.session.execute(update(OutboxMessage).where(OutboxMessage.id == message_id)
                               .values(status="sent", sent_at=utcnow(), last_error="",
                                       **({"body": SCRUBBED_BODY} if scrub else {})))
        else:
            _record_failure(message_id, attempts, error)
        db.session.commit()
    if error is None:
        return "sent"
    # Only a transient failure (the server down) stops the caller's run; a refused address does not.
    return "bounced" if error.permanent else "failed"


def _address(value: str | None) -> str:
    """A stored address as a header value, or "" when it is not one address (rows stored before
    addresses were validated everywhere: `org@example.jp\r\nBcc: x@y` must neither raise nor add a header)."""
    from email_validator import EmailNotValidError, validate_email

    text = (value or "").strip()
    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError:
        return ""


def build_email(message: OutboxMessage) -> EmailMessage:
    """The message as it is sent. Header values come from stored rows, so each is made one line (or
    left out when it is not an address): building never raises on what the database holds."""
    config = current_app.config
    email = EmailMessage()
    email["From"] = config["MAIL_SENDER"]
    # Not one valid address: an empty group, so no stored text can add a recipient (smtplib then has
    # nobody to send to, and the failure is recorded on the message).
    email["To"] = _address(message.to_addr) or "undisclosed-recipients:;"
    email["Subject"] = single_line(message.subject)
    email["Date"] = formatdate(localtime=False)
    email["Message-ID"] = make_msgid(idstring=f"outbox{message.id}", domain="eventapp.local")
    # The sender is a no-reply address; a participant's reply should reach the event's organiser.
    organiser = _address(message.registration.event.organiser_email) if message.registration else ""
    if organiser:
        email["Reply-To"] = organiser
    email.set_content(message.body, charset="utf-8")
    for attachment in registration_attachments(message):
        maintype, _, subtype = attachment["content_type"].partition("/")
        subtype, _, params = subtype.partition(";")
        email.add_attachment(attachment["content"].encode("utf-8"), maintype=maintype, subtype=subtype.strip(),
                             filename=attachment["filename"],
                             params=dict(p.strip().split("=", 1) for p in params.split(";") if "=" in p))
    return email


@contextlib.contextmanager
def _transport() -> Iterator[Callable[[OutboxMessage], None]]:
    """A `send(message)` for the configured backend; SMTP opens one connection, on first use, for all
    the mails sent through it."""
    config = current_app.config
    backend = config["MAIL_BACKEND"]
    if backend not in ("file", "smtp", "null"):
        raise RuntimeError(f"unknown MAIL_BACKEND {backend!r}")
    smtp: smtplib.SMTP | None = None

    def send(message: OutboxMessage) -> None:
        nonlocal smtp
        email = build_email(message)
        if backend == "file":
            directory = Path(config["MAIL_FILE_DIR"])
            directory.mkdir(parents=True, exist_ok=True)
            stamp = utcnow().strftime("%Y%m%dT%H%M%S")
            (directory / f"{stamp}-{message.id:06d}-{message.kind}.eml").write_bytes(email.as_bytes())
        elif backend == "smtp":
            if smtp is None:
                smtp = smtplib.SMTP(config["MAIL_SERVER"], config["MAIL_PORT"], timeout=10)
                if config["MAIL_USE_TLS"]:
                    smtp.starttls(context=ssl.create_default_context())
                if config["MAIL_USERNAME"]:
                    smtp.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"])
            try:
                smtp.send_message(email)
            except smtplib.SMTPServerDisconnected:
                smtp = None  # the next mail opens a new connection
                raise

    try:
        yield send
    finally:
        if smtp is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()


_last_catch_up = 0.0


def _catch_up_due() -> bool:
    """Whether this worker should look for other due mail now: at most once per MAIL_CATCHUP_SECONDS.

    In a sign-up burst every worker would otherwise scan and skip the others' fresh messages after
    each response (about a third of a sign-up's cost); its own messages are always sent at once.
    """
    global _last_catch_up
    now = time.monotonic()
    if now - _last_catch_up < current_app.config.get("MAIL_CATCHUP_SECONDS", 30):
        return False
    _last_catch_up = now
    return True


def deliver_after_response(response):
    """After a request that queued mail has committed, send that mail once the response has gone out.

    Only this request's messages are tried first, and a failure stops the run: with the SMTP server
    down, a worker must not spend timeouts on the whole backlog (cron retries it). When they went
    out, other due messages follow (at most every MAIL_CATCHUP_SECONDS per worker), so development
    setups without cron still catch up.
    """
    if current_app.config.get("MAIL_DELIVERY") == "sender":
        return response  # a separate `send-mail --watch` process picks it up within a second
    # A committed message keeps its primary key in its identity even when expired; one that was
    # rolled back has none and is skipped.
    ids = [state.identity[0] for state in map(inspect, g.get("outbox_queued") or []) if state.identity]
    if not ids:
        return response
    app = current_app._get_current_object()

    def _deliver() -> None:
        with app.app_context():
            try:
                for message_id in ids:
                    if _deliver_one(message_id, utcnow()) == "failed":
                        return
                if _catch_up_due():
                    deliver_due(limit=20)
            except Exception:  # never let mail trouble surface to a participant; cron retries
                app.logger.exception("outbox delivery failed")

    response.call_on_close(_deliver)
    return response
