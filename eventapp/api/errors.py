"""The API's one error format: {"error": {"code", "message", "fields"}} with a 4xx/5xx status."""

from __future__ import annotations

from flask import jsonify
from marshmallow import Schema, fields
from werkzeug.exceptions import HTTPException

from ..observability import request_id

GENERIC_CODES = {
    400: ("bad_request", "リクエストの形式が正しくありません。"),
    401: ("unauthorized", "認証が必要です。"),
    403: ("forbidden", "この操作の権限がありません。"),
    404: ("not_found", "見つかりません。"),
    405: ("method_not_allowed", "このメソッドは使えません。"),
    409: ("conflict", "現在の状態ではこの操作はできません。"),
    413: ("payload_too_large", "リクエストが大きすぎます。"),
    415: ("unsupported_media_type", "Content-Type は application/json にしてください。"),
    422: ("invalid", "入力内容を確認してください。"),
    429: ("rate_limited", "リクエストが多すぎます。しばらくしてからお試しください。"),
    500: ("server_error", "サーバーでエラーが発生しました。"),
    503: ("unavailable", "ただいま混み合っているか、メンテナンス中です。"),
}


class ErrorBodySchema(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    # The request's X-Request-ID: what a client quotes when it reports the error.
    request_id = fields.String()
    fields = fields.Dict(keys=fields.String(), values=fields.String())


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


def error_response(status: int, code: str | None = None, message: str | None = None,
                   field_errors: dict | None = None, headers: dict | None = None):
    default_code, default_message = GENERIC_CODES.get(status, ("error", "エラーが発生しました。"))
    body = {"error": {"code": code or default_code, "message": message or default_message,
                      "fields": field_errors or {}, "request_id": request_id()}}
    response = jsonify(body)
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def flatten_messages(messages, prefix: str = "") -> dict[str, str]:
    """webargs/marshmallow nest messages by location and field; the API reports dotted field names."""
    flat: dict[str, str] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            # The top level is the location (json, query, …); leave it out of the field name.
            name = str(key) if prefix or key not in ("json", "query", "form", "path", "headers") else ""
            full = f"{prefix}.{name}" if prefix and name else (name or prefix)
            flat.update(flatten_messages(value, full))
    elif isinstance(messages, list | tuple):
        if all(isinstance(m, str) for m in messages):
            flat[prefix or "_body"] = " ".join(_japanese(m) for m in messages)
        else:
            for value in messages:
                flat.update(flatten_messages(value, prefix))
    else:
        flat[prefix or "_body"] = _japanese(str(messages))
    return flat


_MESSAGE_JA = {
    "Missing data for required field.": "必須項目です。",
    "Not a valid string.": "文字列で指定してください。",
    "Not a valid integer.": "整数で指定してください。",
    "Not a valid boolean.": "true または false で指定してください。",
    "Not a valid datetime.": "日時は ISO 8601 形式(例: 2025-11-08T13:00:00+09:00)で指定してください。",
    "Not a valid time.": "時刻は HH:MM 形式で指定してください。",
    "Unknown field.": "不明な項目です。",
    "Invalid JSON body.": "JSON の形式が正しくありません。",
    "Not a valid mapping type.": "オブジェクトで指定してください。",
    "Not a valid list.": "配列で指定してください。",
    "Invalid input type.": "型が正しくありません。",
    "Not a valid number.": "数値で指定してください。",
}


def _japanese(message: str) -> str:
    return _MESSAGE_JA.get(message, message)


def http_exception_to_json(error: HTTPException):
    data = getattr(error, "data", None) or {}
    status = error.code or 500
    messages = data.get("messages") or data.get("errors")
    if status == 400 and messages and "Invalid JSON body." in str(messages):
        return error_response(400, "malformed_json", "JSON の形式が正しくありません。")
    if status == 422 and messages:
        return error_response(422, "invalid", None, flatten_messages(messages))
    headers = dict(data.get("headers") or {})
    if getattr(error, "valid_methods", None):  # 405: RFC 9110 requires Allow
        headers["Allow"] = ", ".join(error.valid_methods)
    return error_response(status, data.get("code"), data.get("message"), headers=headers)
