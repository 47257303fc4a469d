"""The sign-up form. Fields are checked by the registration service (one source of rules);
the form renders them, carries the CSRF token and shows the service's messages per field."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, RadioField, SelectField, StringField, TelField, TextAreaField

from ..models import Event
from ..services.people import IWATE_RELATION_LABELS, PREFECTURES


class SignupForm(FlaskForm):
    name = StringField("氏名", render_kw={"autocomplete": "name", "maxlength": 100})
    furigana = StringField("ふりがな", render_kw={"maxlength": 100, "placeholder": "いわて はなこ"})
    email = EmailField("メールアドレス", render_kw={"autocomplete": "email", "inputmode": "email"})
    phone = TelField("電話番号(任意・当日の連絡用)", render_kw={"autocomplete": "tel", "inputmode": "tel"})
    prefecture = SelectField("お住まいの都道府県", choices=[("", "選択してください")] + [(p, p) for p in PREFECTURES],
                             validate_choice=False)
    iwate_relation = RadioField("岩手とのご関係", choices=list(IWATE_RELATION_LABELS.items()), default="none",
                                validate_choice=False)
    occupation = TextAreaField("ご職業(任意)", render_kw={"rows": 2, "maxlength": 2000})
    skills = TextAreaField("活かせるスキル・経験(任意)", render_kw={"rows": 3, "maxlength": 2000})
    consent_privacy = BooleanField("上記の個人情報の取扱いに同意します")

    PERSON_FIELDS = ("name", "furigana", "email", "phone", "prefecture", "iwate_relation", "occupation", "skills")

    def person_data(self) -> dict:
        return {name: self[name].data or "" for name in self.PERSON_FIELDS}

    def answers(self, event: Event) -> dict:
        return {q.key: self[f"q_{q.key}"].data for q in event.active_questions}

    def show_errors(self, fields: dict[str, str]) -> None:
        for name, message in fields.items():
            target = f"q_{name.removeprefix('answers.')}" if name.startswith("answers.") else name
            if target in self:
                self[target].errors = [message]


def signup_form_for(event: Event, formdata=None) -> SignupForm:
    """A SignupForm subclass with one field per active question of the event."""

    class EventSignupForm(SignupForm):
        pass

    for question in event.active_questions:
        label = question.label + ("" if question.required else "(任意)")
        if question.kind == "choice":
            field = RadioField(label, choices=[(c, c) for c in question.choices], validate_choice=False)
        elif question.kind == "yesno":
            field = RadioField(label, choices=[("yes", "はい"), ("no", "いいえ")], validate_choice=False)
        else:
            field = TextAreaField(label, render_kw={"rows": 2, "maxlength": 2000})
        setattr(EventSignupForm, f"q_{question.key}", field)
    return EventSignupForm(formdata=formdata) if formdata is not None else EventSignupForm()
