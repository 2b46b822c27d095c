"""Shapes of the directory API."""

import uuid

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ..messages import N_
from . import reference
from .models import CAPACITY_STATUSES, ORGANIZATION_STATUSES, SERVICE_STATUSES, SEXES

PROVINCE_CODE = r"^(0[1-9]|1[0-9]|2[0-5])\Z"
AREA_CODE = r"^\d{2}(\d{2})?\Z"
Name = fields.String(
    validate=[validate.Length(max=200), validate.Regexp(r"^\s*\S", error="The name is empty.")]
)
Text = fields.String(validate=validate.Length(max=5000), allow_none=True)
ShortText = fields.String(validate=validate.Length(max=200), allow_none=True)
Email = fields.Email(validate=validate.Length(max=254), allow_none=True)
Url = fields.Url(validate=validate.Length(max=500), allow_none=True)
Age = fields.Integer(validate=validate.Range(min=0, max=120), allow_none=True)
KhmerName = fields.String(validate=validate.Length(max=200), allow_none=True)
KhmerText = fields.String(validate=validate.Length(max=5000), allow_none=True)


class OrganizationCreate(Schema):
    name = fields.String(
        required=True,
        validate=[validate.Length(max=200), validate.Regexp(r"^\s*\S", error="The name is empty.")],
    )
    description = fields.String(load_default="", validate=validate.Length(max=5000))
    name_km = KhmerName
    description_km = KhmerText
    province = fields.String(load_default=None, validate=validate.Regexp(PROVINCE_CODE))


class OrganizationUpdate(Schema):
    name = Name
    alternate_name = ShortText
    description = fields.String(validate=validate.Length(max=5000))
    name_km = KhmerName
    description_km = KhmerText
    email = Email
    website = Url
    phones = fields.List(fields.Nested(lambda: PhoneInput()))
    province = fields.String(validate=validate.Regexp(PROVINCE_CODE), allow_none=True)
    status = fields.String(validate=validate.OneOf(ORGANIZATION_STATUSES))


class OrganizationView(Schema):
    id = fields.String()
    name = fields.String()
    alternate_name = fields.String()
    description = fields.String()
    name_km = fields.String()
    description_km = fields.String()
    email = fields.String()
    website = fields.String()
    phones = fields.List(fields.Nested(lambda: PhoneView()))
    province = fields.String()
    status = fields.String()
    last_verified_at = fields.DateTime()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class PhoneInput(Schema):
    number = fields.String(required=True, validate=validate.Length(min=3, max=60))
    type = fields.String(
        load_default="voice",
        validate=validate.OneOf(["voice", "text", "fax", "cell", "video", "pager", "textphone"]),
    )
    description = fields.String(
        load_default=None, validate=validate.Length(max=500), allow_none=True
    )


class PhoneView(Schema):
    number = fields.String()
    type = fields.String()
    description = fields.String()


DAYS = r"(MO|TU|WE|TH|FR|SA|SU)"
TIME = r"^([01]\d|2[0-3]):[0-5]\d\Z"


class ContactInput(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    title = fields.String(load_default=None, validate=validate.Length(max=200), allow_none=True)
    email = fields.Email(load_default=None, validate=validate.Length(max=254), allow_none=True)
    phone = fields.String(
        load_default=None, validate=validate.Length(min=3, max=60), allow_none=True
    )


class ScheduleInput(Schema):
    freq = fields.String(load_default="WEEKLY", validate=validate.OneOf(["WEEKLY", "MONTHLY"]))
    byday = fields.String(required=True, validate=validate.Regexp(rf"^{DAYS}(,{DAYS})*\Z"))
    opens_at = fields.String(load_default=None, validate=validate.Regexp(TIME), allow_none=True)
    closes_at = fields.String(load_default=None, validate=validate.Regexp(TIME), allow_none=True)
    description = fields.String(
        load_default=None, validate=validate.Length(max=500), allow_none=True
    )


class ServiceFields(Schema):
    """The fields a service's writers send; which of them each may send is a rule in service.py."""

    name = Name
    alternate_name = ShortText
    description = fields.String(validate=validate.Length(max=5000))
    name_km = KhmerName
    description_km = KhmerText
    url = Url
    email = Email
    application_process = Text
    fees_description = Text
    eligibility_description = Text
    minimum_age = Age
    maximum_age = Age
    eligibility_sex = fields.String(validate=validate.OneOf(SEXES), allow_none=True)
    categories = fields.List(
        fields.String(validate=validate.Length(max=60)), validate=validate.Length(min=1)
    )
    areas = fields.List(
        fields.String(validate=validate.Regexp(AREA_CODE)), validate=validate.Length(min=1)
    )
    languages = fields.List(fields.String(validate=validate.Regexp(r"^[a-z]{2,3}\Z")))
    phones = fields.List(fields.Nested(PhoneInput))
    contacts = fields.List(fields.Nested(ContactInput))
    schedules = fields.List(fields.Nested(ScheduleInput))
    status = fields.String(validate=validate.OneOf(SERVICE_STATUSES))


class ServiceCreate(ServiceFields):
    organization_id = fields.UUID(required=True)
    accepting_referrals = fields.Boolean()

    @validates_schema
    def _required(self, data, **_kwargs):
        missing = [f for f in ("name", "categories", "areas") if f not in data]
        if missing:
            raise ValidationError({f: ["Missing data for required field."] for f in missing})


class CapacityUpdate(Schema):
    capacity_status = fields.String(validate=validate.OneOf(CAPACITY_STATUSES))
    places_free = fields.Integer(validate=validate.Range(min=0, max=100000), allow_none=True)
    accepting_referrals = fields.Boolean()

    @validates_schema
    def _not_empty(self, data, **_kwargs):
        if not data:
            raise ValidationError(
                "Send at least one of capacity_status, places_free, accepting_referrals."
            )


def _csv(value):
    return [part for part in value.split(",") if part]


class SearchArgs(Schema):
    """Query parameters of GET /api/v1/services."""

    category = fields.Method(deserialize="_categories")
    province = fields.String(validate=validate.Regexp(PROVINCE_CODE))
    district = fields.String(validate=validate.Regexp(r"^\d{4}\Z"))
    age = fields.Integer(validate=validate.Range(min=0, max=120))
    sex = fields.String(validate=validate.OneOf(SEXES))
    language = fields.String(validate=validate.Regexp(r"^[a-z]{2,3}\Z"))
    accepting = fields.Boolean()
    capacity = fields.Method(deserialize="_capacity")
    status = fields.Method(deserialize="_status")
    organization_id = fields.UUID()
    hub = fields.Method(deserialize="_hub")
    q = fields.String(validate=validate.Length(min=1, max=200))
    near = fields.Method(deserialize="_near")
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))
    cursor = fields.String(load_default=None)

    def _categories(self, value):
        codes = _csv(value)
        unknown = reference.unknown_categories(codes)
        if unknown or not codes:
            raise ValidationError(
                N_("Unknown categories: %(codes)s", codes=unknown) if unknown else "Empty."
            )
        return codes

    def _capacity(self, value):
        states = _csv(value)
        if not states or set(states) - set(CAPACITY_STATUSES):
            raise ValidationError(N_("One or more of %(options)s.", options=CAPACITY_STATUSES))
        return states

    def _status(self, value):
        states = _csv(value)
        if not states or set(states) - set(SERVICE_STATUSES):
            raise ValidationError(N_("One or more of %(options)s.", options=SERVICE_STATUSES))
        return states

    def _hub(self, value):
        """local (this network's services), all (the default), or a peer hub's id."""
        if value in ("local", "all"):
            return value
        try:
            return str(uuid.UUID(value))
        except (ValueError, AttributeError, TypeError):
            raise ValidationError("local, all or a peer hub's id.") from None

    def _near(self, value):
        try:
            latitude, longitude = (float(part) for part in value.split(","))
        except ValueError:
            raise ValidationError("Give near as 'latitude,longitude'.") from None
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise ValidationError("Out of range.")
        return latitude, longitude

    @validates_schema
    def _known_areas(self, data, **_kwargs):
        areas = reference.areas_by_code()
        for field in ("province", "district"):
            if field in data and data[field] not in areas:
                raise ValidationError({field: [f"Unknown area code {data[field]!r}."]})
        if (
            "province" in data
            and "district" in data
            and not data["district"].startswith(data["province"])
        ):
            raise ValidationError({"district": ["This district is not in that province."]})


class ChangeView(Schema):
    id = fields.Integer()
    action = fields.String()
    field_name = fields.String()
    previous_value = fields.String()
    replacement_value = fields.String()
    updated_by = fields.String()
    changed_at = fields.DateTime()


class ReminderView(Schema):
    id = fields.String()
    service_id = fields.String()
    last_verified_at = fields.DateTime()
    created_at = fields.DateTime()
