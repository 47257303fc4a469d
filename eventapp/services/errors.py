"""Domain errors: a stable machine-readable code, a user-facing message and an HTTP status."""

from __future__ import annotations


class DomainError(Exception):
    status = 409

    def __init__(self, code: str, message: str, *, status: int | None = None,
                 fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = str(message)
        self.fields = {k: str(v) for k, v in (fields or {}).items()}
        if status is not None:
            self.status = status


class ValidationFailed(DomainError):
    """Input that cannot be accepted; `fields` maps field names to messages."""

    status = 422

    def __init__(self, fields: dict[str, str], message: str | None = None) -> None:
        super().__init__("invalid", message or "入力内容を確認してください。", fields=fields)


class NotFound(DomainError):
    status = 404

    def __init__(self, code: str = "not_found", message: str = "見つかりません。") -> None:
        super().__init__(code, message)
