"""The referral form: consent first, then the facts and only the categories agreed to.

Step 1 asks what the child or guardian agreed to share; step 2 asks the facts and the fields of
those categories alone. Each step carries the other's answers in hidden fields. Every error is
shown beside the field it concerns, in plain words, and listed at the top with a link to it.
"""

from datetime import UTC, datetime, time

from flask_babel import get_timezone, to_utc
from flask_babel import gettext as _
from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from .. import clock
from ..messages import N_
from ..web.forms import form_errors
from .models import PERSONAL_CATEGORIES

STEPS = ("consent", "details")
CONSENT_FIELDS = (
    "consent.given_by",
    "consent.method",
    "consent.obtained_at",
    "consent.categories",
    "consent.share_identity_with_government",
    "consent.expires_at",
    "consent.justification",
)
FACT_FIELDS = (
    "urgency",
    "needs",
    "subject.sex",
    "subject.age",
    "subject.province",
    "subject.district",
    "eligibility_override.reason",
)
# Each category's fields and the control asking for it: an input's type, or a textarea.
CATEGORY_FIELDS = {
    "identity": (
        ("subject.identity.given_name", "text"),
        ("subject.identity.family_name", "text"),
        ("subject.identity.date_of_birth", "date"),
    ),
    "contact": (
        ("subject.contact.phone", "tel"),
        ("subject.contact.caregiver_name", "text"),
        ("subject.contact.caregiver_phone", "tel"),
        ("subject.contact.address", "textarea"),
    ),
    "health": (("subject.health.notes", "textarea"), ("subject.health.disability", "textarea")),
    "case_history": (
        ("subject.case_history.reason", "textarea"),
        ("subject.case_history.risks", "textarea"),
    ),
}
LIST_FIELDS = ("needs", "consent.categories")
FORM_STATE = ("idempotency_key", "draft_id")  # carried by both steps, never shown
FIELDS = (
    *CONSENT_FIELDS,
    *FACT_FIELDS,
    *(name for fields in CATEGORY_FIELDS.values() for name, _control in fields),
)

# Errors about a whole object, or about a field the page asks another way, and where they show.
SHOWN_AT = {
    "subject": ("subject.sex", "subject.age", "subject.province"),
    "subject.birth_year": ("subject.age",),
    "consent": ("consent.given_by", "consent.method", "consent.obtained_at"),
    "eligibility_override": ("eligibility_override.reason",),
}
# What the schema refuses, in plain words: they replace marshmallow's own messages.
PLAIN = {
    "urgency": N_("Choose how urgent it is."),
    "needs": N_("Choose what the person needs from the list."),
    "subject.sex": N_("Choose the person's sex."),
    "subject.age": N_("Write the person's age in years: a whole number from 0 to 120."),
    "subject.province": N_("Choose the province where the person lives."),
    "subject.district": N_("Choose a district of that province, or choose Not known."),
    "eligibility_override.reason": N_("Write why you refer anyway, in 10 to 2,000 characters."),
    "subject.identity.given_name": N_("Write the name in at most 200 characters."),
    "subject.identity.family_name": N_("Write the name in at most 200 characters."),
    "subject.identity.date_of_birth": N_(
        "Write the date of birth as year-month-day, for example 2010-03-14."
    ),
    "subject.contact.phone": N_("Write a phone number of 3 to 60 characters."),
    "subject.contact.caregiver_name": N_("Write the name in at most 200 characters."),
    "subject.contact.caregiver_phone": N_("Write a phone number of 3 to 60 characters."),
    "consent.given_by": N_("Choose who gave consent."),
    "consent.method": N_("Choose how consent was given."),
    "consent.obtained_at": N_(
        "Write the day and time consent was given, for example 2026-12-06 09:30."
    ),
    "consent.categories": N_("Tick only the kinds of information listed."),
    "consent.expires_at": N_(
        "Write the day consent ends as year-month-day, for example 2027-06-30, or leave it empty."
    ),
    "consent.justification": N_(
        "Write why sharing is in the child's best interests, in at least 20 characters."
    ),
}
LONG_TEXT = N_("Write at most 5,000 characters.")
PLAIN |= {
    name: LONG_TEXT
    for name in (
        "subject.contact.address",
        "subject.health.notes",
        "subject.health.disability",
        "subject.case_history.reason",
        "subject.case_history.risks",
    )
}
UNREADABLE = N_("Part of the form could not be read. Check each answer and send it again.")


def labels():
    """Each field's label, in the page's language and the form's order."""
    return {
        "consent.given_by": _("Who gave consent?"),
        "consent.method": _("How was consent given?"),
        "consent.obtained_at": _("When was consent given?"),
        "consent.categories": _("What may be shared?"),
        "consent.share_identity_with_government": _("Government focal points may see the name too"),
        "consent.expires_at": _("Consent ends on (optional)"),
        "consent.justification": _(
            "If there is no consent: why sharing is in the child's best interests"
        ),
        "urgency": _("How urgent is it?"),
        "needs": _("What does the person need?"),
        "subject.sex": _("Sex"),
        "subject.age": _("Age in years"),
        "subject.province": _("Province where the person lives"),
        "subject.district": _("District (if known)"),
        "eligibility_override.reason": _(
            "If the person is outside the service's age or sex: why refer anyway"
        ),
        "subject.identity.given_name": _("Given name"),
        "subject.identity.family_name": _("Family name"),
        "subject.identity.date_of_birth": _("Date of birth"),
        "subject.contact.phone": _("Phone"),
        "subject.contact.caregiver_name": _("Caregiver's name"),
        "subject.contact.caregiver_phone": _("Caregiver's phone"),
        "subject.contact.address": _("Address or how to find the family"),
        "subject.health.notes": _("Health notes"),
        "subject.health.disability": _("Disability"),
        "subject.case_history.reason": _("Why you refer"),
        "subject.case_history.risks": _("Risks the receiver should know"),
    }


def category_of(name):
    """The personal data category a field belongs to, if any."""
    parts = name.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in PERSONAL_CATEGORIES else None


def values_of(form):
    """The form's fields as typed (a MultiDict), without those of categories not agreed to:
    what nobody agreed to share is neither sent, nor kept in a draft, nor carried along."""
    agreed = set(form.getlist("consent.categories"))
    values = MultiDict()
    for name in (*FORM_STATE, *FIELDS):
        if category_of(name) not in (None, *agreed):
            continue
        if name in LIST_FIELDS:
            values.setlist(name, form.getlist(name))
        elif form.get(name):
            values[name] = form[name]
    return values


def draft_values(values):
    """The fields as a draft keeps them: lists for the lists, text for the rest."""
    return {
        name: values.getlist(name) if name in LIST_FIELDS else values[name]
        for name in values
        if name != "draft_id"
    }


def values_of_draft(saved):
    """A draft's fields as the form's values."""
    listed = {name: value if isinstance(value, list) else [value] for name, value in saved.items()}
    return values_of(MultiDict([(name, item) for name, items in listed.items() for item in items]))


def shown_on(step):
    """The fields step 1 or step 2 shows."""
    if step == "consent":
        return CONSENT_FIELDS
    return (*FACT_FIELDS, *(name for fields in CATEGORY_FIELDS.values() for name, _c in fields))


def carried(values, step):
    """(name, value) of the hidden fields carrying what the other step asked."""
    shown = shown_on(step)
    return [(name, value) for name, value in values.items(multi=True) if name not in shown]


def labels_on(step, values):
    """The labels of the fields this step shows, for the list of errors at the top."""
    agreed = set(values.getlist("consent.categories"))
    shown = [name for name in shown_on(step) if category_of(name) in (None, *agreed)]
    everything = labels()
    return {name: everything[name] for name in shown}


def _set(data, dotted, value):
    *parents, last = dotted.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    data[last] = value


def _local_moment(text, end_of_day=False):
    """A time typed on the page, in the hub's timezone; left as typed if it is not one."""
    try:
        if end_of_day:
            moment = datetime.combine(datetime.fromisoformat(text).date(), time(23, 59))
        else:
            moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    return to_utc(moment).replace(tzinfo=UTC).isoformat()


def referral_data(values, service_id):
    """The form's fields as the API's referral body: the same schema checks both."""
    data = {"service_id": service_id}
    for name in FIELDS:
        if name in LIST_FIELDS:
            _set(data, name, values.getlist(name))
        elif values.get(name, "").strip() and name != "consent.share_identity_with_government":
            _set(data, name, values[name].strip())
    consent = data.setdefault("consent", {})
    consent["share_identity_with_government"] = (
        values.get("consent.share_identity_with_government") == "yes"
    )
    for name, end_of_day in (("obtained_at", False), ("expires_at", True)):
        if consent.get(name):
            consent[name] = _local_moment(consent[name], end_of_day)
    return data


def local_now():
    """Now, as the consent's time field shows it."""
    return clock.now().astimezone(get_timezone()).strftime("%Y-%m-%d %H:%M")


def page_errors(exc):
    """{field: [message]} with every error at a field of the form, in plain words.

    An error about a whole object goes to the fields it concerns, one about something the form
    does not ask to "_form". The schema's messages give way to the field's plain words; the
    rules' messages are plain already.
    """
    from_schema = isinstance(exc, ValidationError)
    errors = {}
    for name, messages in form_errors(exc).items():
        for field in SHOWN_AT.get(name, (name,)):
            if field not in FIELDS:
                field = "_form"
            plain = [PLAIN.get(field, UNREADABLE)] if from_schema else messages
            shown = errors.setdefault(field, [])
            shown.extend(m for m in plain if m not in shown)
    return errors


def errors_of_step(errors, step):
    """The errors step 1 or step 2 shows; those about no field show on either."""
    shown = shown_on(step)
    return {name: m for name, m in errors.items() if name in shown or name == "_form"}


def step_to_show(errors):
    """Consent comes first: while an answer of step 1 is wrong, step 1 is shown."""
    return "consent" if any(name in CONSENT_FIELDS for name in errors) else "details"
