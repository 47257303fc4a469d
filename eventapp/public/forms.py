"""The sign-up form. Fields are checked by the registration service (one source of rules);
the form renders them, carries the CSRF token and shows the service's messages per field."""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, RadioField, SelectField, StringField, TelField, TextAreaField
from wtforms.fields.choices import SelectChoice

from ..formatting import english_mode
from ..models import Event
from ..services.people import PREFECTURES

# English names of the prefectures (the stored value stays the Japanese name): msgids of their own,
# so the Japanese labels are the names themselves.
PREFECTURE_LABELS = {
    "北海道": _l("北海道"), "青森県": _l("青森県"), "岩手県": _l("岩手県"), "宮城県": _l("宮城県"),
    "秋田県": _l("秋田県"), "山形県": _l("山形県"), "福島県": _l("福島県"), "茨城県": _l("茨城県"),
    "栃木県": _l("栃木県"), "群馬県": _l("群馬県"), "埼玉県": _l("埼玉県"), "千葉県": _l("千葉県"),
    "東京都": _l("東京都"), "神奈川県": _l("神奈川県"), "新潟県": _l("新潟県"), "富山県": _l("富山県"),
    "石川県": _l("石川県"), "福井県": _l("福井県"), "山梨県": _l("山梨県"), "長野県": _l("長野県"),
    "岐阜県": _l("岐阜県"), "静岡県": _l("静岡県"), "愛知県": _l("愛知県"), "三重県": _l("三重県"),
    "滋賀県": _l("滋賀県"), "京都府": _l("京都府"), "大阪府": _l("大阪府"), "兵庫県": _l("兵庫県"),
    "奈良県": _l("奈良県"), "和歌山県": _l("和歌山県"), "鳥取県": _l("鳥取県"), "島根県": _l("島根県"),
    "岡山県": _l("岡山県"), "広島県": _l("広島県"), "山口県": _l("山口県"), "徳島県": _l("徳島県"),
    "香川県": _l("香川県"), "愛媛県": _l("愛媛県"), "高知県": _l("高知県"), "福岡県": _l("福岡県"),
    "佐賀県": _l("佐賀県"), "長崎県": _l("長崎県"), "熊本県": _l("熊本県"), "大分県": _l("大分県"),
    "宮崎県": _l("宮崎県"), "鹿児島県": _l("鹿児島県"), "沖縄県": _l("沖縄県"), "海外": _l("海外"),
}
assert tuple(PREFECTURE_LABELS) == PREFECTURES
# The English form's name reading: optional, kana or Latin letters (services.people.validate_person).
READING_LABEL = _l("読み方(カタカナまたはローマ字)")

# Labels only; the stored values are the keys (services.people keeps the Japanese labels for exports).
IWATE_RELATION_CHOICES = {"origin": _l("岩手県出身"), "connected": _l("ゆかりがある"), "none": _l("特になし")}
YES_NO_CHOICES = [SelectChoice("yes", _l("はい")), SelectChoice("no", _l("いいえ"))]


class SignupForm(FlaskForm):
    name = StringField(_l("氏名"), render_kw={"autocomplete": "name", "maxlength": 100})
    furigana = StringField(_l("ふりがな"), render_kw={"maxlength": 100, "placeholder": "いわて はなこ"})
    email = EmailField(_l("メールアドレス"), render_kw={"autocomplete": "email", "inputmode": "email"})
    phone = TelField(_l("電話番号(任意・当日の連絡用)"), render_kw={"autocomplete": "tel", "inputmode": "tel"})
    prefecture = SelectField(
        _l("お住まいの都道府県"),
        choices=[SelectChoice("", _l("選択してください"))] + [SelectChoice(p, PREFECTURE_LABELS[p]) for p in PREFECTURES],
        validate_choice=False, render_kw={"autocomplete": "address-level1"})
    iwate_relation = RadioField(
        _l("岩手とのご関係"), choices=[SelectChoice(k, v) for k, v in IWATE_RELATION_CHOICES.items()],
        default="none", validate_choice=False)
    occupation = TextAreaField(_l("ご職業(任意)"), render_kw={"rows": 2, "maxlength": 2000})
    skills = TextAreaField(_l("活かせるスキル・経験(任意)"), render_kw={"rows": 3, "maxlength": 2000})
    consent_privacy = BooleanField(_l("上記の個人情報の取扱いに同意します"))
    # Unticked by default; ticking it only mails a confirmation link (services.announcements).
    announcements_opt_in = BooleanField(_l("次回以降のイベントのお知らせを受け取る"), default=False)

    latin_reading = False  # English mode: the optional name reading in kana or Latin letters
    PERSON_FIELDS = ("name", "furigana", "email", "phone", "prefecture", "iwate_relation", "occupation", "skills")

    def person_data(self) -> dict:
        return {name: self[name].data or "" for name in self.PERSON_FIELDS}

    def answers(self, event: Event) -> dict:
        return {q.key: self[f"q_{q.key}"].data for q in event.active_questions}

    # Companion slots (0-based) the sign-up was given, in order: `companions.<n>` errors map back to them.
    companion_slots: list[int]

    def companions(self, event: Event) -> list[dict]:
        """The companions filled in; a slot with neither name nor furigana is not a companion."""
        self.companion_slots = []
        given = []
        for slot in range(event.max_companions):
            name, furigana = (self[f"companion_{slot}_{f}"].data or "" for f in ("name", "furigana"))
            if not name.strip() and not furigana.strip():
                continue
            self.companion_slots.append(slot)
            given.append({"name": name, "furigana": furigana,
                          "answers": {q.key: self[f"companion_{slot}_q_{q.key}"].data for q in event.active_questions}})
        return given

    def companion_filled(self, slot: int) -> bool:
        """Whether a companion slot was filled in or has errors (the form shows it open)."""
        fields = [f for name, f in self._fields.items() if name.startswith(f"companion_{slot}_")]
        return any(f.errors for f in fields) or any(
            (self[f"companion_{slot}_{name}"].data or "").strip() for name in ("name", "furigana"))

    def show_errors(self, fields: dict[str, str]) -> None:
        for name, message in fields.items():
            target = self._field_for(name)
            if target in self:
                self[target].errors = [message]

    def _field_for(self, name: str) -> str:
        prefix = ""
        if name.startswith("companions."):  # companions.<n>.<field>: the n-th companion given
            _, n, name = (name.split(".", 2) + ["", ""])[:3]
            slots = getattr(self, "companion_slots", [])
            if not n.isdigit() or int(n) >= len(slots):
                return ""
            prefix = f"companion_{slots[int(n)]}_"
        return prefix + (f"q_{name.removeprefix('answers.')}" if name.startswith("answers.") else name)


class AttendeeForm(SignupForm):
    """マイページ's edit form: the attendee's details and answers; the address and consent stay as they are."""

    email = None
    consent_privacy = None
    announcements_opt_in = None
    PERSON_FIELDS = tuple(f for f in SignupForm.PERSON_FIELDS if f != "email")


def signup_form_for(event: Event, formdata=None, *, base: type[SignupForm] = SignupForm,
                    data: dict | None = None) -> SignupForm:
    """A form class (SignupForm by default) with one field per active question of the event."""

    class EventSignupForm(base):
        pass

    english = english_mode()
    EventSignupForm.latin_reading = english  # the templates show the reading as optional
    if english:
        EventSignupForm.furigana = StringField(READING_LABEL, render_kw={"maxlength": 100,
                                                                          "placeholder": "Maria Fernanda"})

    for question in event.active_questions:
        setattr(EventSignupForm, f"q_{question.key}", _question_field(question))
    # Companions (同行者): one fixed set of fields per allowed companion, so the form works without
    # JavaScript; the empty sets are ignored. Every question is asked per person. Sign-up form only
    # (マイページ's attendee form edits one registration).
    for slot in range(event.max_companions if base is SignupForm else 0):
        setattr(EventSignupForm, f"companion_{slot}_name",
                StringField(_l("氏名"), render_kw={"maxlength": 100, "autocomplete": "off"}))
        setattr(EventSignupForm, f"companion_{slot}_furigana",
                StringField(READING_LABEL if english else _l("ふりがな"),
                            render_kw={"maxlength": 100, "placeholder": "Maria Fernanda" if english else "いわて たろう"}))
        for question in event.active_questions:
            setattr(EventSignupForm, f"companion_{slot}_q_{question.key}", _question_field(question))
    if formdata is not None:
        return EventSignupForm(formdata=formdata)
    return EventSignupForm(formdata=None, data=data) if data is not None else EventSignupForm()


def _question_field(question):
    # The question text is the organiser's own (Japanese); only the "optional" mark is translated.
    # Plain gettext, not lazy_gettext: a lazy string has __html__ and Jinja would print the
    # staff-written label as markup (a <meta http-equiv=refresh> label redirected visitors).
    label = question.label if question.required else _("%(label)s(任意)", label=question.label)
    if question.kind == "choice":
        return RadioField(label, choices=[SelectChoice(c, c) for c in question.choices], validate_choice=False)
    if question.kind == "yesno":
        return RadioField(label, choices=YES_NO_CHOICES, validate_choice=False)
    return TextAreaField(label, render_kw={"rows": 2, "maxlength": 2000})
