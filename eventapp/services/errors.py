"""Domain errors: a stable machine-readable code, a user-facing message and an HTTP status."""

from __future__ import annotations

from flask_babel import LazyString
from flask_babel import gettext as _


class DomainError(Exception):
    status = 409

    def __init__(self, code: str, message: str | LazyString, *, status: int | None = None,
                 fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = str(message)  # a lazy message is translated here, in the request's language
        self.fields = {k: str(v) for k, v in (fields or {}).items()}
        if status is not None:
            self.status = status


class ValidationFailed(DomainError):
    """Input that cannot be accepted; `fields` maps field names to messages."""

    status = 422

    def __init__(self, fields: dict[str, str], message: str | None = None) -> None:
        super().__init__("invalid", message or _("入力内容を確認してください。"), fields=fields)


class NotFound(DomainError):
    status = 404

    def __init__(self, code: str = "not_found", message: str | None = None) -> None:
        super().__init__(code, message or _("見つかりません。"))
