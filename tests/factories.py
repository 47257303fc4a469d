"""Re-exported helpers so test modules can `from tests.factories import make_event`."""

from tests.conftest import (
    csrf_token_from,
    future,
    jst,
    make_checkin_event,
    make_event,
    make_registration,
    person_input,
)

__all__ = ["csrf_token_from", "future", "jst", "make_checkin_event", "make_event", "make_registration", "person_input"]
