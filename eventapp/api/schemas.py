"""marshmallow schemas: they type-check API input and generate the OpenAPI description."""

from __future__ import annotations

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate

from ..formatting import JST
from ..models import (
    ALLOCATIONS,
    CALENDAR_ALARMS,
    EVENT_KINDS,
    EVENT_STATUSES,
    IWATE_RELATIONS,
    MAX_CALENDAR_ALARMS,
    MAX_COMPANIONS_LIMIT,
    MAX_REMINDERS,
    PAYMENT_STATUSES,
    QUESTION_KINDS,
    REGISTRATION_STATUSES,
    REMINDERS,
    Registration,
)
from ..models.event import LOTTERY_LOSERS
from ..models.registration import MAIL_LOCALES
from ..services import events as event_rules
from ..services import text
from ..services.matching import MAX_PREFERENCES
from ..services.people import MAX_TEXT, PREFECTURES
from ..services.registration import MAX_ANSWER

_ALARMS_DOC = ("calendar reminders before each day's start, earliest first: 1w, 3d, eve (18:00 JST the day "
               "before), 1d, 3h, 2h, 1h, 30m, 15m; [] for none; null: the kind's defaults (fieldwork eve+2h, "
               "online_seminar 1d+15m, others 1d+2h)")
_REMINDERS_DOC = ("reminder mails to confirmed people before the start (集合 for fieldwork), earliest first: 1w, "
                  "3d, 2d, 1d, 3h, 1h; only the latest due one is sent; [] for none; null: the kind's defaults "
                  "(fieldwork 3d+1d, online_seminar 1d+1h, others 1d)")


def staff_text(limit: int | None, *, multiline: bool = False, **kwargs) -> Text:
    """A staff-typed field under the services' rules (services.text): single-line text refuses
    control characters and CR/LF, and the length is the column's."""
    return Text(validate=text.marshmallow_validator(limit=limit, multiline=multiline), **kwargs)


def length(limit: int, minimum: int | None = None) -> validate.Length:
    return validate.Length(min=minimum, max=limit)


class JSTDateTime(fields.DateTime):
    """ISO 8601 in JST (`+09:00`) on output; input needs an offset or is read as JST."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else value.astimezone(JST).isoformat(timespec="seconds")

    def _deserialize(self, value, attr, data, **kwargs):
        result = super()._deserialize(value, attr, data, **kwargs)
        return result.replace(tzinfo=JST) if result.tzinfo is None else result


class EventDateTime(JSTDateTime):
    """An event's time as written by staff: the services take years 2000–2100 as written (far dates
    overflow UTC conversion); the description says so with a pattern on the year."""

    def __init__(self, *args, **kwargs) -> None:
        metadata = {"pattern": r"^(20[0-9]{2}|2100)-", **(kwargs.pop("metadata", None) or {})}
        super().__init__(*args, metadata=metadata, **kwargs)


class Text(fields.String):
    """A string that can be stored: JSON may carry lone surrogates (`"\\ud800"`) or NUL, which neither
    UTF-8 nor PostgreSQL accept; refuse them here with a 422 instead of failing in the database.
    The OpenAPI description says so (a pattern without NUL) unless the field has its own pattern."""

    def __init__(self, *args, **kwargs) -> None:
        validators = kwargs.get("validate") or []
        validators = validators if isinstance(validators, list | tuple) else [validators]
        metadata = dict(kwargs.pop("metadata", None) or {})
        rule_patterns = [v.pattern for v in validators if getattr(v, "pattern", None) and callable(v)
                         and not isinstance(v, validate.Regexp)]
        if rule_patterns:  # a services.text rule: the description states it
            metadata.setdefault("pattern", rule_patterns[0])
        elif not any(isinstance(v, validate.Regexp) for v in validators):
            metadata.setdefault("pattern", r"^[^\x00]*$")
        super().__init__(*args, metadata=metadata, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        result = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in result or any("\ud800" <= ch <= "\udfff" for ch in result):
            raise ValidationError("使用できない文字が含まれています。")
        return result


class StrictBoolean(fields.Boolean):
    """Only JSON true/false: "yes" or 1 for a consent flag is a client bug, not a yes."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):  # 1 == True in Python, so a set lookup alone would accept 1
            raise self.make_error("invalid", input=value)
        return value


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class ProgrammeItemSchema(StrictSchema):
    starts_at = fields.Time(required=True, format="%H:%M")
    ends_at = fields.Time(allow_none=True, format="%H:%M")
    title = staff_text(event_rules.ITEM_TITLE_LIMIT, required=True)
    place = staff_text(event_rules.ITEM_PLACE_LIMIT)


class EventDaySchema(StrictSchema):
    starts_at = EventDateTime(required=True)
    ends_at = EventDateTime(required=True)
    title = staff_text(event_rules.DAY_TITLE_LIMIT)
    items = fields.List(fields.Nested(ProgrammeItemSchema))


class QuestionSchema(StrictSchema):
    key = Text(required=True, validate=validate.Regexp(rf"^[a-z0-9_]{{1,{event_rules.QUESTION_KEY_LIMIT}}}$"))
    kind = Text(required=True, validate=validate.OneOf(QUESTION_KINDS))
    label = Text(required=True, validate=[validate.Length(min=1),
                                          text.marshmallow_validator(limit=event_rules.QUESTION_LABEL_LIMIT)],
                  metadata={"pattern": text.VISIBLE_LINE_PATTERN})
    help_text = staff_text(event_rules.QUESTION_HELP_LIMIT)
    required = fields.Boolean()
    important = fields.Boolean()  # 重要: highlighted at the door and on the 受付用 roster
    choices = fields.List(staff_text(event_rules.CHOICE_LIMIT))


class EventSchema(Schema):
    id = fields.Integer(dump_only=True)
    slug = Text()
    kind = Text(validate=validate.OneOf(EVENT_KINDS))
    title = Text()
    summary = Text()
    description = Text()
    title_en = Text(metadata={"description": "English title shown in English mode ('' = the Japanese one)"})
    summary_en = Text()
    description_en = Text()
    starts_at = JSTDateTime()
    ends_at = JSTDateTime()
    venue_name = Text()
    venue_address = Text()
    meeting_point = Text()
    access = Text()
    what_to_bring = Text()
    fee_yen = fields.Integer()
    capacity = fields.Integer()
    max_companions = fields.Integer(metadata={"description": "companions one sign-up may bring (0 = none)"})
    confirmed_count = fields.Integer(dump_only=True)
    waitlist_count = fields.Integer(dump_only=True)
    applied_count = fields.Integer(dump_only=True, metadata={"description": "lottery applications not yet drawn"})
    seats_left = fields.Integer(dump_only=True)
    allocation = Text(validate=validate.OneOf(ALLOCATIONS), metadata={
        "description": "first_come (先着順) or lottery (抽選: sign-ups before lottery_draw_at are applications)"})
    lottery_draw_at = JSTDateTime(allow_none=True, metadata={"description": "lottery: when the draw runs"})
    lottery_drawn_at = JSTDateTime(allow_none=True, dump_only=True)
    lottery_losers = Text(validate=validate.OneOf(LOTTERY_LOSERS), metadata={
        "description": "lottery: the applicants not drawn go on the waiting list (waitlist) or are told (not_selected)"})
    availability = Text(dump_only=True, metadata={
        "description": "open | waitlist | not_yet_open | closed | cancelled | draft"})
    status = Text(validate=validate.OneOf(EVENT_STATUSES))
    registration_opens_at = JSTDateTime(allow_none=True)
    registration_closes_at = JSTDateTime(allow_none=True)
    cancellation_deadline = JSTDateTime(allow_none=True)
    roster_freeze_at = JSTDateTime(allow_none=True)
    online_url_reveal_at = JSTDateTime(allow_none=True, metadata={
        "description": "online seminars: when confirmed participants see online_url; null: at confirmation"})
    meeting_at = JSTDateTime(allow_none=True, metadata={
        "description": "集合: the first day's calendar entry starts here, at meeting_point"})
    dismissal_at = JSTDateTime(allow_none=True, metadata={
        "description": "解散: the last day's calendar entry ends here"})
    checkin_opens_at = JSTDateTime(allow_none=True, metadata={
        "description": "null: 00:00 JST the day before the first day"})
    checkin_closes_at = JSTDateTime(allow_none=True, metadata={
        "description": "null: 23:59 JST the day after the last day"})
    calendar_alarms = fields.List(Text(), allow_none=True, metadata={"description": _ALARMS_DOC})
    reminders = fields.List(Text(), allow_none=True, metadata={"description": _REMINDERS_DOC})
    organiser_name = Text()
    organiser_email = Text()
    organiser_phone = Text()
    url = Text(dump_only=True)
    days = fields.List(fields.Nested(EventDaySchema))
    questions = fields.List(fields.Nested(QuestionSchema))


class EventListSchema(Schema):
    events = fields.List(fields.Nested(EventSchema), required=True)
    page = fields.Integer(metadata={"description": "this page (1-based); `per_page` events a page"})
    pages = fields.Integer(metadata={"description": "number of pages (at least 1)"})
    per_page = fields.Integer()
    total = fields.Integer(metadata={"description": "published events matching the query, over all pages"})


class EventListQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    kind = Text(validate=validate.OneOf(EVENT_KINDS))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000),
                          metadata={"description": "page of 100 events, soonest first (default 1)"})


_LIMITS = event_rules.TEXT_LIMITS
_SLUG = event_rules.SLUG_RE.pattern  # checked by services.events with the other fields


def _event_text(field: str, **kwargs) -> Text:
    return staff_text(_LIMITS[field], multiline=field in event_rules.MULTILINE, **kwargs)


class EventWriteSchema(StrictSchema):
    slug = Text(validate=length(event_rules.SLUG_LIMIT, 1), metadata={"pattern": _SLUG})
    kind = Text(validate=validate.OneOf(EVENT_KINDS))
    title = Text(validate=[validate.Length(min=1), text.marshmallow_validator(limit=_LIMITS["title"])],
                 metadata={"pattern": text.VISIBLE_LINE_PATTERN})
    summary = _event_text("summary")
    description = _event_text("description")
    title_en = _event_text("title_en")  # optional English texts ('' = show the Japanese one)
    summary_en = _event_text("summary_en")
    description_en = _event_text("description_en")
    starts_at = EventDateTime()
    ends_at = EventDateTime()
    venue_name = _event_text("venue_name")
    venue_address = _event_text("venue_address")
    meeting_point = _event_text("meeting_point")
    access = _event_text("access")
    what_to_bring = _event_text("what_to_bring")
    latitude = fields.Float(allow_none=True, validate=validate.Range(-90, 90))
    longitude = fields.Float(allow_none=True, validate=validate.Range(-180, 180))
    # The services' rule (services.text.check_url): http(s) with a host, within the column.
    online_url = Text(allow_none=False, validate=text.marshmallow_validator(limit=_LIMITS["online_url"], kind="url"))
    fee_yen = fields.Integer(strict=True, validate=validate.Range(0, 10_000_000))
    capacity = fields.Integer(strict=True, validate=validate.Range(0, 100_000))
    max_companions = fields.Integer(strict=True, validate=validate.Range(0, MAX_COMPANIONS_LIMIT))
    status = Text(validate=validate.OneOf(EVENT_STATUSES))
    allocation = Text(validate=validate.OneOf(ALLOCATIONS), metadata={
        "description": "first_come (default) or lottery; lottery needs lottery_draw_at"})
    lottery_draw_at = EventDateTime(allow_none=True, metadata={
        "description": "lottery: the draw time (after registration opens, before the event)"})
    lottery_losers = Text(validate=validate.OneOf(LOTTERY_LOSERS), metadata={
        "description": "waitlist (default: in drawn order) or not_selected"})
    registration_opens_at = EventDateTime(allow_none=True)
    registration_closes_at = EventDateTime(allow_none=True)
    cancellation_deadline = EventDateTime(allow_none=True)
    roster_freeze_at = EventDateTime(allow_none=True)
    online_url_reveal_at = EventDateTime(allow_none=True, metadata={
        "description": "online seminars: when confirmed participants see online_url; null: at confirmation"})
    meeting_at = EventDateTime(allow_none=True, metadata={
        "description": "集合: the first day's calendar entry starts here, at meeting_point"})
    dismissal_at = EventDateTime(allow_none=True, metadata={
        "description": "解散: the last day's calendar entry ends here"})
    checkin_opens_at = EventDateTime(allow_none=True, metadata={
        "description": "null: 00:00 JST the day before the first day"})
    checkin_closes_at = EventDateTime(allow_none=True, metadata={
        "description": "null: 23:59 JST the day after the last day"})
    calendar_alarms = fields.List(Text(validate=validate.OneOf(CALENDAR_ALARMS)), allow_none=True,
                                  validate=validate.Length(max=MAX_CALENDAR_ALARMS),
                                  metadata={"description": _ALARMS_DOC})
    reminders = fields.List(Text(validate=validate.OneOf(REMINDERS)), allow_none=True,
                            validate=validate.Length(max=MAX_REMINDERS), metadata={"description": _REMINDERS_DOC})
    organiser_name = _event_text("organiser_name")
    # An address as the services accept it (email_validator), or "" for none.
    organiser_email = Text(validate=text.marshmallow_validator(limit=text.MAX_EMAIL, kind="email"),
                           metadata={"format": "email"})
    organiser_phone = _event_text("organiser_phone")
    days = fields.List(fields.Nested(EventDaySchema), validate=validate.Length(min=1, max=31), metadata={
        "description": "The event's days: they decide when it happens (starts_at/ends_at follow them)."})
    questions = fields.List(fields.Nested(QuestionSchema), validate=validate.Length(max=200))


class EventCreateSchema(EventWriteSchema):
    slug = Text(required=True, validate=length(event_rules.SLUG_LIMIT, 1), metadata={"pattern": _SLUG})
    kind = Text(required=True, validate=validate.OneOf(EVENT_KINDS))
    title = Text(required=True, validate=[validate.Length(min=1), text.marshmallow_validator(limit=_LIMITS["title"])],
                 metadata={"pattern": text.VISIBLE_LINE_PATTERN})
    starts_at = EventDateTime(required=True)
    ends_at = EventDateTime(required=True)
    capacity = fields.Integer(required=True, strict=True, validate=validate.Range(0, 100_000))


# What validate_person and validate_answers accept, stated in the schema (issue 15, item 16) so a
# client — or schemathesis — can tell a valid sign-up from an invalid one without trying.
# Some character that is neither whitespace nor a control character (those are stripped).
_VISIBLE = r"^[^\x00]*[^\s\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069][^\x00]*$"
_KANA = "\u3041-\u3096\u309d\u309e\u30a1-\u30f6\u30fc\u30fd\u30fe"
_FURIGANA = rf"^[ \u3000]*[{_KANA}][{_KANA} \u3000]*$"
_PHONE = r"^(\+?[0-9][0-9\-]{8,18}[0-9])?$"  # services.people._PHONE_RE, or empty


class AnswerValue(fields.Raw):
    """An answer is text, a choice (text) or true/false; anything else is refused."""

    def _deserialize(self, value, attr, data, **kwargs):
        if value is not None and not isinstance(value, str | bool):
            raise ValidationError("回答は文字列または true/false で指定してください。")
        if isinstance(value, str):
            value = Text(validate=validate.Length(max=MAX_ANSWER))._deserialize(value, attr, data, **kwargs)
            if len(value) > MAX_ANSWER:
                raise ValidationError(f"回答は{MAX_ANSWER}文字以内で指定してください。")
        return value


def _at_most_200_answers(value: dict) -> None:
    # A plain function, not validate.Length: apispec would describe that as the object's maxLength.
    if len(value) > 200:
        raise ValidationError("回答は200項目までです。")


def _answers_field() -> fields.Dict:
    return fields.Dict(
        # Keys are looked up, never stored: one that names no question is ignored, whatever it holds
        # (OpenAPI 3.0 cannot describe keys, so refusing some would contradict the schema).
        keys=fields.String(),
        values=AnswerValue(allow_none=True, metadata={"oneOf": [{"type": "string", "maxLength": MAX_ANSWER,
                                                                 "pattern": r"^[^\x00]*$"},
                                                                {"type": "boolean"}]}),
        validate=_at_most_200_answers, metadata={
            "maxProperties": 200,
            "description": "question key → answer: text, a choice (its text) or true/false; yes/no questions "
                           "also take \"yes\"/\"no\"/\"はい\"/\"いいえ\"; keys of no question are ignored"})


class CompanionCreateSchema(StrictSchema):
    """A companion (同行者): a registration of its own (seat, ticket, check-in) in the lead's group."""

    name = Text(required=True, validate=length(text.column_limit(Registration.name)),
                metadata={"minLength": 1, "pattern": _VISIBLE})
    furigana = Text(required=True, validate=length(text.column_limit(Registration.furigana)),
                    metadata={"minLength": 1, "pattern": _FURIGANA, "description": "hiragana or katakana"})
    answers = _answers_field()


class RegistrationCreateSchema(StrictSchema):
    # The attendee columns' lengths (the sign-up service checks the same; tests/security/test_lengths.py);
    # what else services.people.validate_person accepts is stated as schema metadata (issue 15, item 16).
    name = Text(required=True, validate=length(text.column_limit(Registration.name)),
                metadata={"minLength": 1, "pattern": _VISIBLE})
    furigana = Text(required=True, validate=length(text.column_limit(Registration.furigana)),
                    metadata={"minLength": 1, "pattern": _FURIGANA, "description": "hiragana or katakana"})
    email = Text(required=True, validate=length(text.MAX_EMAIL), metadata={"format": "email", "minLength": 3})
    phone = Text(validate=length(text.column_limit(Registration.phone)),
                 metadata={"pattern": _PHONE, "description": "digits and hyphens"})
    prefecture = Text(validate=length(text.column_limit(Registration.prefecture)),
                      metadata={"enum": ["", *PREFECTURES]})
    iwate_relation = Text(validate=validate.OneOf(IWATE_RELATIONS))
    occupation = Text(validate=length(MAX_TEXT))
    skills = Text(validate=length(MAX_TEXT))
    consent_privacy = StrictBoolean(required=True, metadata={"enum": [True], "description": "must be true"})
    announcements_opt_in = StrictBoolean(load_default=False, metadata={
        "description": "「次回以降のイベントのお知らせを受け取る」 (default false). true only mails the address a "
                       "confirmation link; consent is recorded when its owner confirms there"})
    answers = _answers_field()
    companions = fields.List(fields.Nested(CompanionCreateSchema), validate=validate.Length(max=MAX_COMPANIONS_LIMIT),
                             metadata={"description": "companions (同行者), at most the event's max_companions; "
                                                      "the group is confirmed together or waits together. "
                                                      "Errors are reported per field, e.g. companions.0.furigana"})
    preferences = fields.List(fields.Integer(strict=True), validate=validate.Length(max=MAX_PREFERENCES), metadata={
        "description": "matching sessions only: organisation ids in rank order (first = most wanted); "
                       "when given, at least one of the session's organisations"})
    locale = Text(validate=validate.OneOf(MAIL_LOCALES), metadata={
        "description": "language of the participant's mails: 'ja' (default) or 'en'"})


class AttendeeSchema(Schema):
    """The attendee as given for this registration (not the address's other sign-ups)."""

    name = Text()
    furigana = Text()
    phone = Text()
    prefecture = Text()
    iwate_relation = Text(validate=validate.OneOf(IWATE_RELATIONS))
    occupation = Text()
    skills = Text()


class CompanionSchema(Schema):
    id = fields.Integer()
    status = Text(validate=validate.OneOf(REGISTRATION_STATUSES))
    waitlist_position = fields.Integer(allow_none=True)
    attendee = fields.Nested(AttendeeSchema)
    manage_token = Text()
    manage_url = Text()
    ticket_code = Text(allow_none=True)
    answers = fields.Dict(keys=Text(), values=Text())


class CancelQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    group = fields.Boolean(load_default=False, metadata={
        "description": "on a lead's registration: also cancel its companions (default: only this seat)"})


class EventRefSchema(Schema):
    id = fields.Integer()
    slug = Text()
    title = Text()
    starts_at = JSTDateTime()
    ends_at = JSTDateTime()


class RegistrationSchema(Schema):
    id = fields.Integer()
    status = Text(validate=validate.OneOf(REGISTRATION_STATUSES))
    waitlist_position = fields.Integer(allow_none=True)
    manage_token = Text()
    manage_url = Text()
    ticket_code = Text(allow_none=True)
    created_at = JSTDateTime()
    cancelled_at = JSTDateTime(allow_none=True)
    event = fields.Nested(EventRefSchema)
    attendee = fields.Nested(AttendeeSchema, metadata={
        "description": "who attends, as given for this registration (each registration of one address "
                       "may name a different attendee); rosters, badges and check-in show these"})
    answers = fields.Dict(keys=Text(), values=Text())
    lead_registration_id = fields.Integer(allow_none=True, metadata={
        "description": "set on a companion: the id of the registration that signed the group up"})
    companions = fields.List(fields.Nested(CompanionSchema), metadata={
        "description": "on the lead's registration: the companions signed up with it"})
    locale = Text(validate=validate.OneOf(MAIL_LOCALES), metadata={"description": "language of the participant's mails"})


class RegistrationEnvelopeSchema(Schema):
    registration = fields.Nested(RegistrationSchema, required=True)


class PersonSchema(Schema):
    id = fields.Integer()
    name = Text()
    furigana = Text()
    email = Text(allow_none=True)
    phone = Text()
    prefecture = Text()
    iwate_relation = Text()


class StaffRegistrationSchema(RegistrationSchema):
    person = fields.Nested(PersonSchema, metadata={
        "description": "the contact identity (one per e-mail address, as at its first sign-up); "
                       "the registration's attendee is `attendee`"})
    source = Text()
    payment_status = Text(validate=validate.OneOf(PAYMENT_STATUSES), metadata={
        "description": "参加費: unpaid | paid | waived | refunded, or none for a free event"})


class StaffRegistrationListSchema(Schema):
    registrations = fields.List(fields.Nested(StaffRegistrationSchema), required=True)
    confirmed_count = fields.Integer()
    waitlist_count = fields.Integer()
    applied_count = fields.Integer()


class DrawResultSchema(Schema):
    event_id = fields.Integer()
    seed = Text(metadata={"description": "the draw's random seed (hex): with the inputs it re-derives the order"})
    won = fields.Integer()
    waitlisted = fields.Integer()
    not_selected = fields.Integer()
