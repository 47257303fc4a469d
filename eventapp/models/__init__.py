"""All models, imported here so Alembic and the app see the whole schema."""

from .announcement import AnnouncementConsent
from .audit import AuditEntry
from .checkin import CHECKIN_SOURCES, CheckIn
from .event import (
    ALLOCATIONS,
    CALENDAR_ALARMS,
    EVENT_KINDS,
    EVENT_STATUSES,
    MAX_CALENDAR_ALARMS,
    MAX_COMPANIONS_LIMIT,
    MAX_REMINDERS,
    QUESTION_KINDS,
    REMINDERS,
    Event,
    EventDay,
    ProgrammeItem,
    Question,
)
from .idempotency import IdempotencyKey
from .matching import (
    Attendance,
    AttendanceCodeAttempts,
    EventAttendanceState,
    Invitation,
    MatchingLink,
    MatchingSettings,
    Outcome,
    Preference,
    SurveyResponse,
    TimetableSlot,
)
from .mypage import MyPageLink
from .organisation import IWATE_MUNICIPALITIES, PROJECT_TYPES, EventOrganisation, Organisation
from .outbox import OutboxMessage, UndeliverableAddress
from .payment import PAYMENT_KINDS, PAYMENT_METHODS, PAYMENT_STATUSES, Payment
from .person import IWATE_RELATIONS, Person
from .privacy import PrivacyNotice
from .ratelimit import RateLimitCounter
from .registration import ACTIVE_STATUSES, ATTENDEE_FIELDS, REGISTRATION_STATUSES, Answer, Registration
from .reminder import ReminderSend
from .staff import ROLES, ApiToken, RecoveryCode, User
from .staff_mail import STAFF_MAIL_ATTACHMENTS, STAFF_MAIL_AUDIENCES, STAFF_MAIL_STATUSES, StaffMail

__all__ = [
    "ACTIVE_STATUSES", "ALLOCATIONS", "ATTENDEE_FIELDS", "CALENDAR_ALARMS", "CHECKIN_SOURCES", "EVENT_KINDS", "EVENT_STATUSES",
    "IWATE_RELATIONS", "MAX_CALENDAR_ALARMS", "MAX_COMPANIONS_LIMIT", "MAX_REMINDERS", "QUESTION_KINDS", "REGISTRATION_STATUSES", "REMINDERS", "ROLES", "Answer", "ApiToken", "AuditEntry",
    "CheckIn", "Event", "MyPageLink", "EventDay", "IdempotencyKey", "OutboxMessage", "Person", "PrivacyNotice",
    "ProgrammeItem", "RateLimitCounter", "AnnouncementConsent", "Question", "RecoveryCode", "Registration", "ReminderSend",
    "UndeliverableAddress", "User",
    "STAFF_MAIL_ATTACHMENTS", "STAFF_MAIL_AUDIENCES", "STAFF_MAIL_STATUSES", "StaffMail",
    "PAYMENT_KINDS", "PAYMENT_METHODS", "PAYMENT_STATUSES", "Payment",
    # matching and organisations
    "IWATE_MUNICIPALITIES", "PROJECT_TYPES", "Attendance", "AttendanceCodeAttempts", "EventAttendanceState", "EventOrganisation", "Invitation",
    "MatchingLink", "MatchingSettings", "Organisation", "Outcome", "Preference", "SurveyResponse", "TimetableSlot",
]
