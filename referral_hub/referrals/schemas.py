"""Shapes of the referral API (what schemas/*.json publish for partners)."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ..directory.schemas import PROVINCE_CODE
from ..messages import N_
from . import references
from .models import (
    CONSENT_GIVERS,
    CONSENT_METHODS,
    OUTCOMES,
    PERSONAL_CATEGORIES,
    STATUSES,
    URGENCIES,
)

SUBJECT_SEXES = ("female", "male", "other")
Short = fields.String(validate=validate.Length(min=1, max=200))
Long = fields.String(validate=validate.Length(min=1, max=5000))
Phone = fields.String(validate=validate.Length(min=3, max=60))


class IdentityData(Schema):
    given_name = Short
    family_name = Short
    other_names = Short
    date_of_birth = fields.Date()


class ContactData(Schema):
    phone = Phone
    address = Long
    caregiver_name = Short
    caregiver_phone = Phone
    caregiver_relationship = Short


class HealthData(Schema):
    notes = Long
    disability = Long


class CaseHistoryData(Schema):
    reason = Long
    summary = Long
    risks = Long


class SubjectInput(Schema):
    sex = fields.String(required=True, validate=validate.OneOf(SUBJECT_SEXES))
    birth_year = fields.Integer(validate=validate.Range(min=1900, max=2100))
    age = fields.Integer(validate=validate.Range(min=0, max=120))
    province = fields.String(required=True, validate=validate.Regexp(PROVINCE_CODE))
    district = fields.String(validate=validate.Regexp(r"^\d{4}\Z"))
    identity = fields.Nested(IdentityData)
    contact = fields.Nested(ContactData)
    health = fields.Nested(HealthData)
    case_history = fields.Nested(CaseHistoryData)

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _age_or_birth_year(self, data, original, **_kwargs):
        """Checked even when other fields are wrong, so a form marks every missing fact at once;
        an age given but invalid has its own error already."""
        if isinstance(original, dict) and not {"age", "birth_year"} & set(original):
            raise ValidationError({"birth_year": ["Give the subject's age or birth year."]})

    @validates_schema
    def _district_in_province(self, data, **_kwargs):
        if "district" in data and not data["district"].startswith(data.get("province", "")):
            raise ValidationError({"district": ["This district is not in that province."]})


class ConsentInput(Schema):
    given_by = fields.String(required=True, validate=validate.OneOf(CONSENT_GIVERS))
    method = fields.String(required=True, validate=validate.OneOf(CONSENT_METHODS))
    obtained_at = fields.AwareDateTime(required=True)
    categories = fields.List(
        fields.String(validate=validate.OneOf(PERSONAL_CATEGORIES)), required=True
    )
    share_identity_with_government = fields.Boolean(load_default=False)
    expires_at = fields.AwareDateTime(load_default=None, allow_none=True)
    justification = fields.String(load_default=None, validate=validate.Length(min=20, max=5000))

    @validates_schema
    def _best_interests_is_justified(self, data, **_kwargs):
        if data.get("given_by") == "best_interests" and not data.get("justification"):
            raise ValidationError(
                {"justification": ["Sharing without consent needs a written justification."]}
            )


class EligibilityOverride(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=10, max=2000))


class Referrer(Schema):
    """Who referred at a peer hub's end; only a peer hub sends it."""

    caseworker = Short
    organization = Short


class ReferralCreate(Schema):
    service_id = fields.UUID(required=True)
    urgency = fields.String(required=True, validate=validate.OneOf(URGENCIES))
    needs = fields.List(fields.String(validate=validate.Length(max=60)), load_default=list)
    subject = fields.Nested(SubjectInput, required=True)
    consent = fields.Nested(ConsentInput, required=True)
    eligibility_override = fields.Nested(EligibilityOverride, load_default=None)
    referrer = fields.Nested(Referrer, load_default=None)


class StatusChange(Schema):
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    reason = fields.String(load_default=None, validate=validate.Length(min=1, max=500))
    outcome = fields.String(load_default=None, validate=validate.OneOf(OUTCOMES))
    suggested_service_id = fields.UUID(load_default=None)


class Assignment(Schema):
    """Whom the receiving organisation assigns the referral to; null takes it off them."""

    user_id = fields.UUID(required=True, allow_none=True)


class ConsentWithdrawal(Schema):
    erase = fields.Boolean(load_default=False)


def _csv_of(options):
    def parse(value):
        values = [part for part in value.split(",") if part]
        if not values or set(values) - set(options):
            raise ValidationError(N_("One or more of %(options)s.", options=options))
        return values

    return parse


def _reference(value):
    found = references.normalized(value)
    if found is None:
        raise ValidationError("Not a referral reference (like MT-26-0042).")
    return found


class ListArgs(Schema):
    role = fields.String(validate=validate.OneOf(["sent", "received"]))
    status = fields.Function(deserialize=_csv_of(STATUSES))
    urgency = fields.Function(deserialize=_csv_of(URGENCIES))
    overdue = fields.Boolean()
    updated_since = fields.AwareDateTime()
    reference = fields.Function(deserialize=_reference)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))
    cursor = fields.String(load_default=None)
