"""/api/v1: JSON API described by OpenAPI 3 (flask-smorest generates the description)."""

from __future__ import annotations

from flask import Flask, request
from flask_smorest import Api

from ..services.errors import DomainError
from .errors import ErrorSchema, error_response, http_exception_to_json


class EventApi(Api):
    ERROR_SCHEMA = ErrorSchema
    DEFAULT_ERROR_RESPONSE_NAME = "DEFAULT_ERROR"

    def handle_http_exception(self, error):
        # flask-smorest registers this app-wide; pages outside the API keep their HTML error pages.
        if not request.path.startswith("/api/"):
            from flask import current_app
            handler = current_app.error_handler_spec[None].get(error.code, {})
            for cls, fn in handler.items():
                if isinstance(error, cls):
                    return fn(error)
            return error
        return http_exception_to_json(error)


api = EventApi()


def register_api(app: Flask) -> None:
    from .routes import blp

    api.init_app(app)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "description": "`flask --app eventapp create-token`"}
    )
    api.register_blueprint(blp)
    from .checkin_routes import blp as checkin_blp
    api.register_blueprint(checkin_blp)
    from .payment_routes import blp as payments_blp
    api.register_blueprint(payments_blp)

    @app.errorhandler(RecursionError)
    def _too_deep(exc: RecursionError):
        # json.loads recurses once per nesting level: `[[[[…` from a client must be a 400, not a 500.
        if request.path.startswith("/api/"):
            return error_response(400, "malformed_json", "JSON の入れ子が深すぎます。")
        raise exc

    @app.errorhandler(DomainError)
    def _domain_error(exc: DomainError):
        if request.path.startswith("/api/"):
            return error_response(exc.status, exc.code, exc.message, exc.fields)
        from flask import render_template
        return render_template("errors/error.html", status=exc.status, title="エラー",
                               message=exc.message), exc.status
