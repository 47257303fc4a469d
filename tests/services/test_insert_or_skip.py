"""database.insert_or_skip / column_values: one cached `INSERT … ON CONFLICT DO NOTHING RETURNING`
statement for both databases (used by the sign-up's person and the check-in row)."""

from __future__ import annotations

from sqlalchemy import func, select

from eventapp.database import column_values, insert_or_skip
from eventapp.extensions import db
from eventapp.models import Person
from eventapp.services.text import search_keys

INSERT_PERSON = select(Person).from_statement(insert_or_skip(Person.__table__, conflict="email"))


def _values(email: str, name: str) -> dict:
    # The search keys have no Python default (a writer that forgets them fails): given like people.py does.
    return column_values(Person.__table__, {"email": email, "name": name, "furigana": "いわて",
                                            **search_keys(name, "いわて", "")})


def test_a_new_row_comes_back_as_a_persistent_object_with_the_models_defaults(ctx):
    person = db.session.scalars(INSERT_PERSON, _values("skip-new@example.jp", "岩手 一郎")).one()

    assert person.id is not None and person in db.session
    # The Python defaults an ORM insert would have added: a secret calendar token, times, "".
    assert person.calendar_token and len(person.calendar_token) >= 20
    assert person.created_at is not None and person.created_at.tzinfo is not None
    assert (person.phone, person.iwate_relation, person.anonymised_at) == ("", "none", None)
    db.session.commit()
    assert db.session.get(Person, person.id).name == "岩手 一郎"


def test_a_conflicting_row_is_skipped_and_the_saved_one_is_untouched(ctx):
    first = db.session.scalars(INSERT_PERSON, _values("skip-dup@example.jp", "最初 の人")).one()
    db.session.commit()

    again = db.session.scalars(INSERT_PERSON, _values("skip-dup@example.jp", "二番目 の人")).one_or_none()

    assert again is None
    db.session.commit()
    rows = db.session.execute(select(Person.name).where(Person.email == "skip-dup@example.jp")).scalars().all()
    assert rows == ["最初 の人"]
    assert db.session.execute(select(func.count()).select_from(Person)
                              .where(Person.id == first.id)).scalar_one() == 1


def test_the_statement_is_cacheable():
    # The reason it is plain SQL: the dialects' own on_conflict inserts have no cache key, so
    # SQLAlchemy compiled them on every execution.
    assert INSERT_PERSON._generate_cache_key() is not None
