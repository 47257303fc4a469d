"""Schemathesis against /api/v1/openapi.json: generated valid and invalid requests, with a staff token
and ids of real objects, must never give a 5xx and every response must match the described schema."""

from __future__ import annotations

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from eventapp.extensions import db
from tests.conftest import make_event, make_registration
from tests.staff_support import make_user

# Bounded: ~14 operations x 2 modes x this many examples keeps a run around a minute per database.
MAX_EXAMPLES = 20
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# ST202 "accepted by the schema but rejected": the schema states what these operations accept (issue 15,
# item 16). Event writes are left out: "ends after it starts" and "days inside the event" relate two
# fields, which OpenAPI cannot express.
POSITIVE_ACCEPTED = {"POST /api/v1/events/{event_id}/registrations"}


@pytest.fixture
def real_objects(app):
    """A published event with a confirmed registration and a staff token, so ids hit real rows."""
    from eventapp.services.accounts import create_token
    from eventapp.services.checkin import check_in  # noqa: F401  (the check-in module must import cleanly)

    with app.app_context():
        event = make_event(capacity=5)
        registration = make_registration(event)
        user = make_user("admin")
        token = create_token(user.email)
        db.session.commit()
        objects = {"event_id": event.id, "manage_token": registration.manage_token, "token": token}
        db.session.remove()
    return objects


def _path_parameters(operation, objects) -> dict:
    names = {p.name for p in operation.path_parameters}
    return {name: objects[name] for name in names if name in objects}


def test_api_conforms_to_its_schema(app, real_objects):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    headers = {"Authorization": f"Bearer {real_objects['token']}"}
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            # Positive cases aim at real rows; negative ones may also break the path parameters.
            fixed = _path_parameters(operation, real_objects) if mode is GenerationMode.POSITIVE else None
            strategy = operation.as_strategy(mode, path_parameters=fixed, headers=headers)
            checks = CHECKS + ([positive_data_acceptance] if operation.label in POSITIVE_ACCEPTED else [])

            @given(case=strategy)
            @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            def run(case):
                case.call_and_validate(checks=checks)  # noqa: B023 (run() is called in this iteration)

            started = time.perf_counter()
            try:
                run()
            except Unsatisfiable:
                # Nothing of this operation can be made invalid (no body, no query): negative mode has no case.
                assert mode is GenerationMode.NEGATIVE, operation.label
            except Exception as exc:  # collect every operation's failure, then fail once with all of them
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
            print(f"{operation.label} [{mode.value}] {time.perf_counter() - started:.1f}s")  # shown with -s / on failure
    assert operations >= 10, "the OpenAPI description lost its operations"
    assert not failures, "\n\n".join(failures)
