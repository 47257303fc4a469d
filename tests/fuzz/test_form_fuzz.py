"""Hostile values posted to every HTML form: the forms are found by crawling the public and staff pages
and parsing their <form> elements, so a new form is covered without touching this file. Each form gets
a bounded number of Hypothesis examples (long strings, control characters, RTL marks, emoji, HTML/JS,
SQL fragments, invalid dates and numbers). No response may be a 5xx (with TESTING on, an exception in a
view reaches the test), and rows no form may touch (a bystander event, its registration and person)
are byte-for-byte the same afterwards."""

from __future__ import annotations

import json
import re
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from eventapp.extensions import db
from eventapp.models.base import utcnow
from eventapp.services import attendance, organisations
from tests.conftest import future, make_event, make_registration
from tests.security.conftest import sign_in_mypage
from tests.services.test_matching import attend, make_org
from tests.staff_support import login, make_user

EXAMPLES_PER_FORM = 12
MAX_PAGES = 70
# Links that are not pages (downloads) or would end the session the crawl runs in.
SKIP_LINK = re.compile(r"\.(pdf|csv|xlsx|ics|png|svg|js|webmanifest)(\?|$)|/logout|/static/|/api/|[?&]lang=")
SKIP_FORM_ACTION = re.compile(r"/logout$")

HOSTILE = [
    "", " ", "0", "-1", "1e309", "NaN", "9" * 40, "-99999999999999999999", "3.5", "０１２", "１２３",
    "2025-02-30", "2025-13-01", "0000-00-00", "9999-12-31T99:99", "25:61", "yesterday", "2025-11-08T13:00",
    "<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "javascript:alert(1)",
    "' OR 1=1 --", "'; DROP TABLE registration; --", "%s%s%n", "{{7*7}}", "${7*7}",
    "\u202eevil\u202c", "\u200f\u200e\u200b\ufeff", "👩‍👩‍👧‍👦🏯🍇", "\x01\x02\x07\x1b[31m", "a\r\nb\tc",
    "\x00", "\ud800", "ｱｲｳ" * 3, "岩手 花子", "person@example.com", "not-an-email", "a@b",
    "x" * 5000, "あ" * 20000,
    # Found by outside fuzzing: integers beyond 64 bits and Python's int-string limit, edge dates (with
    # offsets they overflow when converted to UTC), lone surrogates.
    "9" * 5000, str(2**63), str(2**64), "-9223372036854775809", "1e20",
    "9999-12-31T23:59", "0001-01-01T00:00", "9999-12-31", "0001-01-01", "9999-12-31T23:59:59-09:00",
    "0001-01-01T00:00:00+09:00", "10000-01-01T00:00", "\udfff", "岩手\udc80花子",
]
EXTREME_DATES = ["9999-12-31T23:59", "0001-01-01T00:00", "9999-12-31", "0001-01-01", "9999-12-31T23:59:59-09:00",
                 "0001-01-01T00:00:00+09:00"]


def hostile_text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(HOSTILE),
        st.text(max_size=60),
        st.text(alphabet=st.characters(codec="utf-8"), min_size=200, max_size=3000),
        st.integers(min_value=-10**20, max_value=10**20).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(str),
        st.dates().map(lambda d: d.isoformat()),
        st.sampled_from(EXTREME_DATES),
        st.integers(min_value=2**63 - 2, max_value=2**70).map(str),
        # Lone surrogates anywhere in a string (sent as the invalid UTF-8 a broken client produces).
        st.tuples(st.text(max_size=10), st.characters(categories=["Cs"]), st.text(max_size=10)).map("".join),
    )


@dataclass
class Form:
    page: str
    action: str
    method: str
    form_id: str = ""
    fields: dict[str, dict] = field(default_factory=dict)  # name → {type, value, options, multiple}

    def key(self) -> tuple:
        return (self.method, re.sub(r"/\d+", "/N", self.action), self.form_id, tuple(sorted(self.fields)))


class FormParser(HTMLParser):
    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page
        self.forms: list[Form] = []
        self.links: list[str] = []
        self._form: Form | None = None
        self._select: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if tag == "a" and a.get("href"):
            self.links.append(urljoin(self.page, a["href"]))
        elif tag == "form":
            self._form = Form(page=self.page, action=urljoin(self.page, a.get("action") or self.page),
                              method=(a.get("method") or "get").lower(), form_id=a.get("id", ""))
            self.forms.append(self._form)
        elif self._form is None or not a.get("name"):
            if tag == "option" and self._select is not None:
                self._select["options"].append(a.get("value", ""))
            return
        elif tag in ("input", "button"):
            kind = a.get("type", "text" if tag == "input" else "submit").lower()
            if kind in ("submit", "button", "reset", "image", "file"):
                return
            entry = self._form.fields.setdefault(a["name"], {"type": kind, "value": a.get("value", ""),
                                                            "options": [], "multiple": False})
            if kind in ("checkbox", "radio"):
                entry["options"].append(a.get("value", "on"))
                entry["multiple"] = entry["multiple"] or (kind == "checkbox" and len(entry["options"]) > 1)
        elif tag == "select":
            self._select = self._form.fields.setdefault(a["name"], {
                "type": "select", "value": "", "options": [], "multiple": "multiple" in a})
        elif tag == "textarea":
            self._form.fields.setdefault(a["name"], {"type": "textarea", "value": "", "options": [],
                                                     "multiple": False})
        if tag == "option" and self._select is not None:
            self._select["options"].append(a.get("value", ""))

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None


def value_strategy(spec: dict) -> st.SearchStrategy:
    """Mostly hostile text; for choices also a real option (so the rest of the form gets validated)."""
    if spec["type"] == "hidden":
        return st.one_of(st.just(spec["value"]), hostile_text())
    if spec["type"] in ("date", "datetime-local", "time"):  # year 1 and 9999 edges, with and without offsets
        return st.one_of(st.sampled_from(EXTREME_DATES), st.sampled_from(EXTREME_DATES), hostile_text(), st.none())
    if spec["type"] == "number":
        return st.one_of(st.sampled_from(["9" * 5000, str(2**63), str(2**64), "1e20", "-1"]), hostile_text(),
                         st.none())
    if spec["options"]:
        real = st.sampled_from(spec["options"])
        if spec["multiple"]:
            return st.lists(st.one_of(real, hostile_text()), max_size=4)
        return st.one_of(real, real, hostile_text(), st.none())
    return st.one_of(hostile_text(), hostile_text(), st.none())


def crawl(client, seeds: list[str], prefix: str, avoid: re.Pattern) -> list[Form]:
    """Breadth-first over same-site pages under `prefix`; returns the distinct POST forms."""
    seen: set[str] = set()
    queue = list(seeds)
    forms: dict[tuple, Form] = {}
    while queue and len(seen) < MAX_PAGES:
        url = queue.pop(0)
        path = urlsplit(url).path + (f"?{urlsplit(url).query}" if urlsplit(url).query else "")
        pattern = re.sub(r"/\d+", "/N", urlsplit(url).path)
        if path in seen or pattern in {re.sub(r"/\d+", "/N", urlsplit(s).path) for s in seen if "?" not in s} \
                and "?" not in path:
            continue
        if avoid.search(path):
            continue
        seen.add(path)
        response = client.get(path)
        assert response.status_code < 500, f"GET {path} → {response.status_code}"
        if response.status_code != 200 or "html" not in (response.content_type or ""):
            continue
        parser = FormParser(f"http://localhost{path}")
        parser.feed(response.get_data(as_text=True))
        for form in parser.forms:
            wanted = form.method == "post" or form.form_id == "walkin-form"
            if wanted and not avoid.search(urlsplit(form.action).path):
                forms.setdefault(form.key(), form)
        for link in parser.links:
            parts = urlsplit(link)
            if parts.netloc in ("", "localhost") and parts.path.startswith(prefix) and not SKIP_LINK.search(link):
                queue.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return list(forms.values())


BYSTANDER_SQL = {
    "event": "SELECT * FROM event WHERE id = :event_id",
    "registration": "SELECT * FROM registration WHERE event_id = :event_id ORDER BY id",
    "person": "SELECT p.* FROM person p JOIN registration r ON r.person_id = p.id WHERE r.event_id = :event_id",
    "answers": "SELECT a.* FROM answer a JOIN registration r ON r.id = a.registration_id "
               "WHERE r.event_id = :event_id ORDER BY a.id",
}


def fingerprint(app, event_id: int) -> dict:
    with app.app_context():
        result = {}
        for name, sql in BYSTANDER_SQL.items():
            try:
                rows = db.session.execute(text(sql), {"event_id": event_id}).mappings().all()
            except Exception:  # a table this version does not have
                db.session.rollback()
                continue
            result[name] = [dict(r) for r in rows]
        db.session.remove()
        return result


@pytest.fixture
def scene(app):
    """Events in every state a form depends on, a matching session with organisations, a staff admin,
    and a bystander event whose rows no form may change."""
    saved = {k: app.config.get(k) for k in ("SIGNUP_RATE_LIMIT", "TOKEN_RATE_LIMIT", "CHECKIN_RATE_LIMIT")}
    app.config.update({k: "100000/minute" for k in saved})
    with app.app_context():
        now = utcnow()
        # Check-in open now (staff set the window), so the check-in screen and its walk-in form are reachable.
        fieldwork = make_event(slug="fw-open", checkin_opens_at=now - timedelta(hours=1), questions=[
            {"key": "lodging", "kind": "choice", "label": "宿泊", "required": True, "choices": ["要", "不要"]},
            {"key": "note", "kind": "text", "label": "備考"},
            {"key": "agree", "kind": "yesno", "label": "同意"},
        ])
        past_fw = make_event(slug="fw-past", starts_at=now - timedelta(days=3))
        session = make_event(kind="matching_session", slug="ms-next", starts_at=future(20), fee_yen=0)
        orgs = [make_org(), make_org("さともり株式会社", municipality="大槌町", project_type="business")]
        for org in orgs:
            organisations.link_event(session.id, org.id)
        organisations.link_event(past_fw.id, orgs[0].id)
        attendee = make_registration(past_fw, email="attendee@example.com", now=now - timedelta(days=10))
        attend(attendee)
        live = make_event(kind="online_seminar", slug="sem-now", starts_at=now - timedelta(minutes=30),
                          ends_at=now + timedelta(hours=1), online_url="https://meet.example/x")
        live_reg = make_registration(live, email="online@example.com", now=now - timedelta(days=2))
        attendance.new_attendance_code(live.id)
        ended = make_event(kind="online_seminar", slug="sem-ended", starts_at=now - timedelta(hours=5),
                           ends_at=now - timedelta(hours=3), online_url="https://meet.example/y")
        ended_reg = make_registration(ended, email="survey@example.com", now=now - timedelta(days=2))
        regs = [make_registration(fieldwork, answers={"lodging": "要"}) for _ in range(2)]
        bystander = make_event(slug="bystander", title="触れてはいけないイベント", capacity=2)
        # two confirmed, one waitlisted
        bystander_regs = [make_registration(bystander) for _ in range(3)]
        admin = make_user("admin")
        db.session.commit()
        ids = {"fieldwork": fieldwork, "session": session, "live_reg": live_reg.manage_token,
               "ended_reg": ended_reg.manage_token, "reg": regs[0].manage_token, "reg2": regs[1].manage_token,
               "attendee": attendee.manage_token, "bystander": bystander.id, "admin": admin.email,
               "fieldwork_id": fieldwork.id, "session_id": session.id, "my_email": regs[0].person.email,
               # Pages and actions of the bystander's rows are never crawled or posted.
               "avoid": re.compile("|".join(
                   [rf"/events/{bystander.id}(/|$)", rf"/events/{bystander.slug}(/|$)"]
                   + [rf"/registrations/{r.id}(/|$)" for r in bystander_regs]
                   + [rf"/people/{r.person_id}(/|$)" for r in bystander_regs]
                   + [rf"/r/{r.manage_token}" for r in bystander_regs]))}
        ids["fieldwork"], ids["session"] = fieldwork.slug, session.slug
        db.session.remove()
    yield ids
    app.config.update(saved)


def _post(client, form: Form, data: dict):
    path = urlsplit(form.action).path
    if form.form_id == "walkin-form":  # the check-in screen posts this form as JSON with its CSRF header
        event_id = re.search(r"/checkin/events/(\d+)", urlsplit(form.page).path).group(1)
        payload = {k: v for k, v in data.items() if k != "csrf_token"}
        return client.post(f"/api/v1/events/{event_id}/walkins", data=json.dumps(payload),
                           content_type="application/json", headers={"X-CSRFToken": data["csrf_token"]})
    # Encoded by hand: a lone surrogate becomes the invalid UTF-8 bytes %ED%A0%80, as a broken client sends them.
    body = urlencode(data, doseq=True, encoding="utf-8", errors="surrogatepass")
    return client.post(path, data=body, content_type="application/x-www-form-urlencoded")


def _csrf_for(client, form: Form) -> str:
    html = client.get(urlsplit(form.page).path + (f"?{urlsplit(form.page).query}" if urlsplit(form.page).query
                                                  else "")).get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(r'data-csrf="([^"]+)"', html)
    return match.group(1) if match else ""


STATUSES: Counter = Counter()  # what the fuzzed posts got back: proves they reached the views


def _fuzz_test(client, form: Form, token: str, fuzzable: dict):
    @given(values=st.fixed_dictionaries({n: value_strategy(s) for n, s in fuzzable.items()}))
    @settings(max_examples=EXAMPLES_PER_FORM, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(values):
        data = {k: v for k, v in values.items() if v is not None}
        data["csrf_token"] = token
        try:
            response = _post(client, form, data)
        except Exception:
            raise AssertionError(f"{form.action}: exception\n{traceback.format_exc(limit=-6)}") from None
        assert response.status_code < 500, f"{form.action}: {response.status_code}"
        STATUSES[response.status_code] += 1

    return run


def fuzz_forms(app, client, forms: list[Form], failures: list[str], relogin=None) -> int:
    fuzzed = 0
    for form in forms:
        if SKIP_FORM_ACTION.search(urlsplit(form.action).path):
            continue
        if relogin:
            relogin()
        token = _csrf_for(client, form)
        fuzzable = {n: s for n, s in form.fields.items() if n != "csrf_token"}
        fuzzed += 1

        run = _fuzz_test(client, form, token, fuzzable)
        try:
            run()
        except Exception as exc:
            parts = [str(e) for e in exc.exceptions] if isinstance(exc, BaseExceptionGroup) else [str(exc)]
            failures.append(f"POST {form.action} (form on {form.page}): " + "\n".join(p[:3000] for p in parts))
    return fuzzed


def test_public_forms_survive_hostile_input(app, scene):
    client = app.test_client()
    before = fingerprint(app, scene["bystander"])
    sign_in_mypage(app, client, scene["my_email"])  # マイページ's forms too (logout is left for last)
    seeds = ["/", f"/events/{scene['fieldwork']}", f"/events/{scene['fieldwork']}/register",
             f"/events/{scene['session']}/register", f"/r/{scene['reg']}", f"/r/{scene['reg2']}/cancel",
             f"/r/{scene['live_reg']}", f"/r/{scene['ended_reg']}/survey", f"/r/{scene['attendee']}",
             "/staff/login", "/my", "/my/"]
    forms = crawl(client, seeds, "/", re.compile(scene["avoid"].pattern + r"|^/my/logout$"))
    actions = {re.sub(r"/\d+/", "/N/", re.sub(r"/[\w-]{20,}", "/TOKEN", urlsplit(f.action).path)) for f in forms}
    for expected in ("/events/fw-open/register", "/r/TOKEN/cancel", "/r/TOKEN/attendance", "/r/TOKEN/survey",
                     "/staff/login", "/events/ms-next/register", "/my", "/my/registrations/N/edit",
                     "/my/registrations/N/cancel", "/my/feed/rotate"):
        assert expected in actions, f"form {expected} not found (found {sorted(actions)})"
    failures: list[str] = []
    STATUSES.clear()
    fuzz_forms(app, client, forms, failures)
    assert not failures, "\n\n".join(failures)
    # Refused input (422) and accepted posts (303 redirect) both happened: the values reached the views.
    assert STATUSES[422] and STATUSES[303], STATUSES
    assert fingerprint(app, scene["bystander"]) == before


def test_staff_forms_survive_hostile_input(app, scene):
    client = app.test_client()
    login(client, scene["admin"])

    def relogin() -> None:
        if client.get("/staff/").status_code != 200:
            login(client, scene["admin"])

    before = fingerprint(app, scene["bystander"])
    seeds = ["/staff/", "/staff/events/new", f"/staff/events/{scene['fieldwork_id']}",
             f"/staff/events/{scene['fieldwork_id']}/participants", f"/staff/matching/{scene['session_id']}",
             "/staff/users", "/staff/privacy", "/staff/account/password", "/staff/organisations/new",
             "/checkin/", f"/checkin/events/{scene['fieldwork_id']}", f"/checkin/events/{scene['fieldwork_id']}/list"]
    forms = crawl(client, seeds, "/", scene["avoid"])
    assert len(forms) >= 15, [f.action for f in forms]
    failures: list[str] = []
    count = fuzz_forms(app, client, forms, failures, relogin=relogin)
    assert count >= 15
    assert not failures, "\n\n".join(failures)
    assert fingerprint(app, scene["bystander"]) == before


# --------------------------------------------------------------------------- numbers in paths and queries

HUGE_PATH_INTS = [0, 9999, 2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64, 10**30]
HUGE_QUERY_VALUES = [str(2**63 - 1), str(2**63), str(2**64), "9" * 5000, "1e20", "-1", "0", "%ED%A0%80"]
QUERY_NAMES = ["page", "after", "year", "question", "day", "event", "event_id", "registration_id", "id", "limit",
               "offset", "q", "sort", "preset", "status", "kind", "answer", "action", "object_type", "invite"]
SWEEP_EXAMPLES = 5


def _sweep_run(client, rule, values_for: dict, statuses: Counter):
    int_args = [name for name, converter in rule._converters.items() if type(converter).__name__ ==
                "BoundedIntConverter"]
    other_args = [name for name in rule.arguments if name not in int_args]
    strategy = st.fixed_dictionaries({
        "path": st.fixed_dictionaries({
            **{name: st.sampled_from(HUGE_PATH_INTS + [values_for.get(name, 1)]) for name in int_args},
            **{name: st.sampled_from([str(values_for.get(name, "x")), "%ED%A0%80", "x" * 300]) for name in other_args},
        }),
        "query": st.dictionaries(st.sampled_from(QUERY_NAMES), st.sampled_from(HUGE_QUERY_VALUES), max_size=4),
    })

    @given(values=strategy)
    @settings(max_examples=SWEEP_EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(values):
        path = rule.rule
        for name, value in values["path"].items():
            path = re.sub(rf"<(?:[\w()=, ]+:)?{name}>", str(value), path)
        url = path + ("?" + "&".join(f"{k}={v}" for k, v in values["query"].items()) if values["query"] else "")
        try:
            response = client.get(url)
        except Exception:
            raise AssertionError(f"GET {url}: exception\n{traceback.format_exc(limit=-6)}") from None
        assert response.status_code < 500, f"GET {url}: {response.status_code}"
        statuses[response.status_code] += 1

    return run


def test_every_page_survives_huge_numbers_in_its_path_and_query(app, scene):
    """Every GET route of the app (public, staff, check-in, API), signed in as admin: ids beyond 64 bits
    in the path, and numbers beyond 64 bits (and Python's int-string limit) in the usual query parameters."""
    client = app.test_client()
    login(client, scene["admin"])
    values_for = {"event_id": scene["fieldwork_id"], "slug": scene["fieldwork"], "token": scene["reg"],
                  "manage_token": scene["reg"], "year": 2025}
    rules = [rule for rule in app.url_map.iter_rules()
             if "GET" in rule.methods and rule.endpoint not in ("static", "auth.logout")
             and not scene["avoid"].search(rule.rule)]
    assert len(rules) >= 40, len(rules)
    failures: list[str] = []
    statuses: Counter = Counter()
    for rule in rules:
        try:
            _sweep_run(client, rule, values_for, statuses)()
        except Exception as exc:
            failures.append(f"{rule.rule}: {str(exc)[:1500]}")
        if client.get("/staff/").status_code != 200:  # a route that ended the session
            login(client, scene["admin"])
    assert not failures, "\n\n".join(failures)
    assert statuses[404] and statuses[200], statuses
