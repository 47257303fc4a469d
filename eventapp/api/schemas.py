"""marshmallow schemas: they type-check API input and generate the OpenAPI description."""

from __future__ import annotations

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate

from ..formatting import JST
from ..models import EVENT_KINDS, EVENT_STATUSES, IWATE_RELATIONS, QUESTION_KINDS, REGISTRATION_STATUSES


class JSTDateTime(fields.DateTime):
    """ISO 8601 in JST (`+09:00`) on output; input needs an offset or is read as JST."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else value.astimezone(JST).isoformat(timespec="seconds")

    def _deserialize(self, value, attr, data, **kwargs):
        result = super()._deserialize(value, attr, data, **kwargs)
        return result.replace(tzinfo=JST) if result.tzinfo is None else result


class Text(fields.String):
    """A string that can be stored: JSON may carry lone surrogates (`"\\ud800"`) or NUL, which neither
    UTF-8 nor PostgreSQL accept; refuse them here with a 422 instead of failing in the database."""

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


class AnswerValue(fields.Raw):
    """An answer is text, a choice (text) or true/false; anything else is refused."""

    def _deserialize(self, value, attr, data, **kwargs):
        if value is not None and not isinstance(value, str | bool):
            raise ValidationError("回答は文字列または true/false で指定してください。")
        return Text()._deserialize(value, attr, data, **kwargs) if isinstance(value, str) else value


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class ProgrammeItemSchema(StrictSchema):
    starts_at = fields.Time(required=True, format="%H:%M")
    ends_at = fields.Time(allow_none=True, format="%H:%M")
    title = Text(required=True, validate=validate.Length(max=300))
    place = Text(validate=validate.Length(max=300))


class EventDaySchema(StrictSchema):
    starts_at = JSTDateTime(required=True)
    ends_at = JSTDateTime(required=True)
    title = Text(validate=validate.Length(max=200))
    items = fields.List(fields.Nested(ProgrammeItemSchema))


class QuestionSchema(StrictSchema):
    key = Text(required=True, validate=validate.Regexp(r"^[a-z0-9_]{1,64}$"))
    kind = Text(required=True, validate=validate.OneOf(QUESTION_KINDS))
    label = Text(required=True, validate=validate.Length(min=1, max=300))
    help_text = Text(validate=validate.Length(max=500))
    required = fields.Boolean()
    choices = fields.List(Text(validate=validate.Length(max=200)))


class EventSchema(Schema):
    id = fields.Integer(dump_only=True)
    slug = Text()
    kind = Text(validate=validate.OneOf(EVENT_KINDS))
    title = Text()
    summary = Text()
    description = Text()
    starts_at = JSTDateTime()
    ends_at = JSTDateTime()
    venue_name = Text()
    venue_address = Text()
    meeting_point = Text()
    access = Text()
    what_to_bring = Text()
    fee_yen = fields.Integer()
    capacity = fields.Integer()
    confirmed_count = fields.Integer(dump_only=True)
    waitlist_count = fields.Integer(dump_only=True)
    seats_left = fields.Integer(dump_only=True)
    availability = Text(dump_only=True, metadata={
        "description": "open | waitlist | not_yet_open | closed | cancelled | draft"})
    status = Text(validate=validate.OneOf(EVENT_STATUSES))
    registration_opens_at = JSTDateTime(allow_none=True)
    registration_closes_at = JSTDateTime(allow_none=True)
    cancellation_deadline = JSTDateTime(allow_none=True)
    roster_freeze_at = JSTDateTime(allow_none=True)
    checkin_opens_at = JSTDateTime(allow_none=True, metadata={
        "description": "null: 00:00 JST the day before the first day"})
    checkin_closes_at = JSTDateTime(allow_none=True, metadata={
        "description": "null: 23:59 JST the day after the last day"})
    organiser_name = Text()
    organiser_email = Text()
    organiser_phone = Text()
    url = Text(dump_only=True)
    days = fields.List(fields.Nested(EventDaySchema))
    questions = fields.List(fields.Nested(QuestionSchema))


class EventListSchema(Schema):
    events = fields.List(fields.Nested(EventSchema), required=True)


class EventListQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    kind = Text(validate=validate.OneOf(EVENT_KINDS))


class EventWriteSchema(StrictSchema):
    slug = Text(validate=validate.Length(min=1, max=120))
    kind = Text(validate=validate.OneOf(EVENT_KINDS))
    title = Text(validate=validate.Length(min=1, max=300))
    summary = Text(validate=validate.Length(max=2000))
    description = Text(validate=validate.Length(max=20000))
    starts_at = JSTDateTime()
    ends_at = JSTDateTime()
    venue_name = Text(validate=validate.Length(max=300))
    venue_address = Text(validate=validate.Length(max=500))
    meeting_point = Text(validate=validate.Length(max=2000))
    access = Text(validate=validate.Length(max=5000))
    what_to_bring = Text(validate=validate.Length(max=5000))
    latitude = fields.Float(allow_none=True, validate=validate.Range(-90, 90))
    longitude = fields.Float(allow_none=True, validate=validate.Range(-180, 180))
    online_url = fields.Url(allow_none=False, schemes={"http", "https"})
    fee_yen = fields.Integer(strict=True, validate=validate.Range(0, 10_000_000))
    capacity = fields.Integer(strict=True, validate=validate.Range(0, 100_000))
    status = Text(validate=validate.OneOf(EVENT_STATUSES))
    registration_opens_at = JSTDateTime(allow_none=True)
    registration_closes_at = JSTDateTime(allow_none=True)
    cancellation_deadline = JSTDateTime(allow_none=True)
    roster_freeze_at = JSTDateTime(allow_none=True)
    checkin_opens_at = JSTDateTime(allow_none=True, metadata={
        "description": "null: 00:00 JST the day before the first day"})
    checkin_closes_at = JSTDateTime(allow_none=True, metadata={
        "description": "null: 23:59 JST the day after the last day"})
    organiser_name = Text(validate=validate.Length(max=200))
    organiser_email = fields.Email()
    organiser_phone = Text(validate=validate.Length(max=40))
    days = fields.List(fields.Nested(EventDaySchema), validate=validate.Length(max=31))
    questions = fields.List(fields.Nested(QuestionSchema), validate=validate.Length(max=200))


class EventCreateSchema(EventWriteSchema):
    slug = Text(required=True, validate=validate.Length(min=1, max=120))
    kind = Text(required=True, validate=validate.OneOf(EVENT_KINDS))
    title = Text(required=True, validate=validate.Length(min=1, max=300))
    starts_at = JSTDateTime(required=True)
    ends_at = JSTDateTime(required=True)
    capacity = fields.Integer(required=True, strict=True, validate=validate.Range(0, 100_000))


class RegistrationCreateSchema(StrictSchema):
    name = Text(required=True, validate=validate.Length(max=500))
    furigana = Text(required=True, validate=validate.Length(max=500))
    email = Text(required=True, validate=validate.Length(max=500))
    phone = Text(validate=validate.Length(max=100))
    prefecture = Text(validate=validate.Length(max=20))
    iwate_relation = Text(validate=validate.OneOf(IWATE_RELATIONS))
    occupation = Text(validate=validate.Length(max=5000))
    skills = Text(validate=validate.Length(max=5000))
    consent_privacy = StrictBoolean(required=True, metadata={"description": "must be true"})
    answers = fields.Dict(keys=Text(validate=validate.Length(max=64)),
                          values=AnswerValue(allow_none=True), validate=validate.Length(max=200), metadata={
                              "description": "question key → answer (text, a choice, or true/false)"})


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
    answers = fields.Dict(keys=Text(), values=Text())


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
    person = fields.Nested(PersonSchema)
    source = Text()


class StaffRegistrationListSchema(Schema):
    registrations = fields.List(fields.Nested(StaffRegistrationSchema), required=True)
    confirmed_count = fields.Integer()
    waitlist_count = fields.Integer()
