"""Host organisations (受入企業・団体): validation, create/update/delete, links to events."""

from __future__ import annotations

from sqlalchemy import func, select

from ..extensions import db
from ..formatting import kana_sort_key
from ..models import Event, EventOrganisation, Organisation, Outcome
from ..models.organisation import EVENT_ORG_ROLES, IWATE_MUNICIPALITIES, PROJECT_TYPES
from . import text
from .errors import DomainError, NotFound, ValidationFailed

TEXT_FIELDS = ("name", "furigana", "municipality", "description", "challenges", "project_type",
               "contact_name", "contact_email", "contact_phone")


MULTILINE = ("description", "challenges")
# String columns give their length; the long texts have theirs here (tests/security/test_lengths.py).
LIMITS = {**{k: text.column_limit(getattr(Organisation, k)) for k in TEXT_FIELDS if k not in MULTILINE},
          "description": 5000, "challenges": 5000}


def validate_organisation(raw: dict) -> dict:
    errors: dict[str, str] = {}
    data = {k: text.check(errors, k, raw.get(k), limit=LIMITS[k], multiline=k in MULTILINE)
            for k in TEXT_FIELDS if k != "contact_email"}
    data["contact_email"] = text.check_email(errors, "contact_email", raw.get("contact_email"))
    if not data["name"]:
        errors["name"] = "団体名を入力してください。"
    if data["municipality"] not in IWATE_MUNICIPALITIES:
        errors["municipality"] = "所在地(岩手県の市町村)を選んでください。"
    if data["project_type"] not in PROJECT_TYPES:
        errors["project_type"] = "プロジェクトの型(ビジネスマッチング型/ファンコミュニティ型)を選んでください。"
    if errors:
        raise ValidationFailed(errors)
    return data


def list_organisations(q: str = "") -> list[Organisation]:
    stmt = select(Organisation)
    if q:
        like = f"%{q}%"
        stmt = stmt.where(Organisation.name.ilike(like) | Organisation.municipality.ilike(like)
                          | Organisation.challenges.ilike(like))
    orgs = db.session.execute(stmt).scalars().all()
    return sorted(orgs, key=lambda o: kana_sort_key(o.furigana or o.name))


def get(organisation_id: int) -> Organisation:
    org = db.session.get(Organisation, organisation_id)
    if org is None:
        raise NotFound("organisation_not_found", "団体が見つかりません。")
    return org


def _name_taken(name: str, exclude_id: int | None) -> bool:
    stmt = select(func.count()).select_from(Organisation).where(Organisation.name == name)
    if exclude_id is not None:
        stmt = stmt.where(Organisation.id != exclude_id)
    return db.session.execute(stmt).scalar_one() > 0


def create_organisation(raw: dict) -> Organisation:
    data = validate_organisation(raw)
    if _name_taken(data["name"], None):
        raise ValidationFailed({"name": "同じ名前の団体が既に登録されています。"})
    org = Organisation(**data)
    db.session.add(org)
    db.session.flush()
    return org


def update_organisation(organisation_id: int, raw: dict) -> Organisation:
    org = get(organisation_id)
    data = validate_organisation(raw)
    if _name_taken(data["name"], org.id):
        raise ValidationFailed({"name": "同じ名前の団体が既に登録されています。"})
    for key, value in data.items():
        setattr(org, key, value)
    db.session.flush()
    return org


def delete_organisation(organisation_id: int) -> None:
    org = get(organisation_id)
    has_outcomes = db.session.execute(
        select(func.count()).select_from(Outcome).where(Outcome.organisation_id == org.id)).scalar_one()
    if has_outcomes:
        raise DomainError("organisation_has_outcomes",
                          "面談・マッチングの記録がある団体は削除できません。記録を残すため、名称に(終了)などを付けてください。")
    db.session.delete(org)
    db.session.flush()


def event_organisations(event_id: int, role: str | None = None) -> list[EventOrganisation]:
    stmt = select(EventOrganisation).where(EventOrganisation.event_id == event_id)
    if role:
        stmt = stmt.where(EventOrganisation.role == role)
    links = db.session.execute(stmt).scalars().all()
    return sorted(links, key=lambda link: (link.role != "host", kana_sort_key(link.organisation.furigana
                                                                             or link.organisation.name)))


def link_event(event_id: int, organisation_id: int, role: str = "host") -> EventOrganisation:
    if role not in EVENT_ORG_ROLES:
        raise ValidationFailed({"role": "役割を選んでください。"})
    if db.session.get(Event, event_id) is None:
        raise NotFound("event_not_found", "イベントが見つかりません。")
    get(organisation_id)
    link = db.session.execute(select(EventOrganisation).where(
        EventOrganisation.event_id == event_id, EventOrganisation.organisation_id == organisation_id)
    ).scalar_one_or_none()
    if link is None:
        link = EventOrganisation(event_id=event_id, organisation_id=organisation_id, role=role)
        db.session.add(link)
    link.role = role
    db.session.flush()
    return link


def unlink_event(event_id: int, organisation_id: int) -> None:
    link = db.session.execute(select(EventOrganisation).where(
        EventOrganisation.event_id == event_id, EventOrganisation.organisation_id == organisation_id)
    ).scalar_one_or_none()
    if link is not None:
        db.session.delete(link)
        db.session.flush()
