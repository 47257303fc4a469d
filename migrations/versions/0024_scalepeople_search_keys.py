"""people/registrations.search_name, search_phone: stored search keys for the staff person search

Revision ID: scalepeople_search_keys
Revises: announce_consents
Create Date: 2026-12-04 19:20:00

The person search used to load every person and fold their text in Python (1.1 s at 50,000 people).
It is now `LIKE '%key%'` on these keys, indexed:

- PostgreSQL: GIN trigram indexes (`CREATE EXTENSION IF NOT EXISTS pg_trgm`, which needs the
  contrib package and the right to create it). If the extension cannot be created, plain btree
  indexes of the same names are made instead and the search still works, by scanning
  (docs/performance.md says how to add pg_trgm later).
- SQLite: plain indexes (a leading-wildcard LIKE scans the smaller index instead of the table).

Existing rows are backfilled in batches of 1,000 with the folding rules copied below (frozen: this
migration must give the same keys whatever the app's code says later). NOT NULL with a server default
"": app servers older than this revision keep working while it runs. Also indexes outbox.to_addr, so
that purge-expired finds a person's mails without scanning the outbox.

Duration: the backfill rewrites every person and registration row. Measured on the test PostgreSQL
(2 cores) with 50,000 people and 200,000 registrations: about 50 s, during which the new columns'
ALTER TABLE lock makes sign-ups wait; run the upgrade at a quiet time (it is a deploy step).
"""
import re
import unicodedata

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'scalepeople_search_keys'
down_revision = 'announce_consents'
branch_labels = None
depends_on = None

BATCH = 1000
TRIGRAM_INDEXES = (
    ("ix_people_search_name", "people", "search_name"),
    ("ix_people_search_phone", "people", "search_phone"),
    ("ix_people_email_trgm", "people", "email"),
    ("ix_registrations_search_name", "registrations", "search_name"),
    ("ix_registrations_search_phone", "registrations", "search_phone"),
)


# --- frozen copy of eventapp.services.text.search_fold / name_search_key / phone_digits (2026-12)
def _fold(text):
    folded = unicodedata.normalize("NFKC", text or "").lower()
    folded = "".join(chr(ord(ch) - 0x60) if "\u30a1" <= ch <= "\u30f6" else ch for ch in folded)
    return re.sub(r"\s+", "", folded)


def _phone_digits(phone):
    text = unicodedata.normalize("NFKC", phone or "").strip()
    digits = re.sub(r"[^0-9]", "", text)
    if text.startswith("+81") and digits.startswith("81"):
        digits = "0" + digits[2:]
    return digits


def _backfill(bind, name):
    table = sa.table(name, sa.column("id", sa.Integer), sa.column("name", sa.String),
                     sa.column("furigana", sa.String), sa.column("phone", sa.String),
                     sa.column("search_name", sa.Text), sa.column("search_phone", sa.String))
    update = (table.update().where(table.c.id == sa.bindparam("row_id"))
              .values(search_name=sa.bindparam("key_name"), search_phone=sa.bindparam("key_phone")))
    last = 0
    while True:
        rows = bind.execute(sa.select(table.c.id, table.c.name, table.c.furigana, table.c.phone)
                            .where(table.c.id > last).order_by(table.c.id).limit(BATCH)).all()
        if not rows:
            return
        bind.execute(update, [{"row_id": r.id, "key_name": f"{_fold(r.name)} {_fold(r.furigana)}",
                               "key_phone": _phone_digits(r.phone)} for r in rows])
        last = rows[-1].id


def _has_trigram(bind) -> bool:
    """pg_trgm present, or created now; False (and nothing changed) when it cannot be created."""
    if bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).first():
        return True
    try:
        with bind.begin_nested():  # a refused CREATE EXTENSION must not abort the migration's transaction
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        return True
    except sa.exc.DBAPIError:
        return False


def upgrade():
    bind = op.get_bind()
    for table in ("people", "registrations"):
        op.add_column(table, sa.Column('search_name', sa.Text(), server_default='', nullable=False))
        op.add_column(table, sa.Column('search_phone', sa.String(length=40), server_default='', nullable=False))
        _backfill(bind, table)
    # Anonymised people are found by nobody (their rows already read 匿名 / とくめい).
    bind.execute(sa.text("UPDATE people SET search_name = '', search_phone = '' WHERE anonymised_at IS NOT NULL"))
    bind.execute(sa.text("UPDATE registrations SET search_name = '', search_phone = '' WHERE person_id IN "
                         "(SELECT id FROM people WHERE anonymised_at IS NOT NULL)"))
    trigram = bind.dialect.name == "postgresql" and _has_trigram(bind)
    for index, table, column in TRIGRAM_INDEXES:
        if trigram:
            op.create_index(index, table, [column], postgresql_using="gin",
                            postgresql_ops={column: "gin_trgm_ops"})
        else:
            op.create_index(index, table, [column])
    # Covering btree indexes for searches too short for trigrams (one or two characters, e.g. 佐藤).
    op.create_index('ix_people_search_name_id', 'people', ['search_name', 'id'])
    op.create_index('ix_registrations_search_name_person', 'registrations', ['search_name', 'person_id'])
    op.create_index('ix_outbox_to_addr', 'outbox', ['to_addr'])


def downgrade():
    op.drop_index('ix_outbox_to_addr', table_name='outbox')
    op.drop_index('ix_registrations_search_name_person', table_name='registrations')
    op.drop_index('ix_people_search_name_id', table_name='people')
    for index, table, _column in TRIGRAM_INDEXES:
        op.drop_index(index, table_name=table)
    # pg_trgm stays: other databases objects may use it, and it holds no data.
    for table in ("registrations", "people"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('search_phone')
            batch_op.drop_column('search_name')
