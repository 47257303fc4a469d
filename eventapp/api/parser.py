"""The API's request parser: every JSON body the API reads goes through it."""

from __future__ import annotations

import json
import typing

import flask
from flask_smorest import Blueprint
from flask_smorest import abort as api_abort
from marshmallow import validate
from webargs.flaskparser import FlaskParser

from ..params import MAX_ID

ID_RANGE = validate.Range(min=1, max=MAX_ID, error="範囲外の数値です。")  # ids in bodies and queries, as in paths


class JsonParser(FlaskParser):
    """webargs catches only JSONDecodeError; json.loads raises a plain ValueError for an integer of more
    than 4,300 digits (Python's int-string limit), which would be a 500. Any body json.loads refuses is
    the API's usual 400 malformed_json."""

    def _raw_load_json(self, req: flask.Request) -> typing.Any:
        try:
            data = super()._raw_load_json(req)
        except json.JSONDecodeError:
            raise  # webargs' own handling (an empty body is "missing")
        except ValueError as exc:
            return self._handle_invalid_json_error(exc, req)  # type: ignore[arg-type]
        bad = _lone_surrogates(data)
        if bad:
            # "\ud800" is valid JSON but no valid text (PostgreSQL's driver cannot encode it): a 422 naming
            # the fields, as for any other value that cannot be stored.
            api_abort(422, messages={"json": {name: ["使用できない文字(不正なサロゲート)が含まれています。"]
                                              for name in bad}})
        return data


def _lone_surrogates(value: typing.Any, path: str = "") -> list[str]:
    """Dotted paths of the strings (keys included) in a parsed JSON document that are not valid Unicode."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return [path or "_body"]
        return []
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{key}" if path else str(key)
            found += [name.encode("utf-8", "replace").decode()] if _lone_surrogates(key) else []
            found += _lone_surrogates(item, name.encode("utf-8", "replace").decode())
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _lone_surrogates(item, f"{path}.{index}" if path else str(index))
    return found


class ApiBlueprint(Blueprint):
    ARGUMENTS_PARSER = JsonParser()
