"""Coordinators curate the directory: organisations and their services, verified and retired."""

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from ..csrf import check_csrf
from ..errors import Conflict, InvalidInput
from ..extensions import db
from ..web.confirm import ask_first, confirmation_page, confirmed
from ..web.error_pages import page_blueprint
from ..web.forms import form_errors
from ..web.localize import area_name, category_options, language_name, province_options
from ..web.pages import list_and_form
from ..web.session import signed_in
from . import reference, service
from .models import SEXES, Organization
from .schemas import (
    CapacityUpdate,
    OrganizationCreate,
    OrganizationUpdate,
    ServiceCreate,
    ServiceFields,
)

bp = page_blueprint("curation_pages", __name__, url_prefix="/curation")
COORDINATOR = "coordinator"
LANGUAGES = ("km", "en", "fr", "vi", "th", "zh")
HISTORY_SHOWN = 30
RETIRED = "defunct"  # a service's status once it no longer exists: asks once more
ORGANIZATION_FIELDS = (
    "name",
    "alternate_name",
    "description",
    "name_km",
    "description_km",
    "email",
    "website",
    "province",
)
KHMER_TEXTS = ("name_km", "description_km")  # empty means "not written yet": None
SERVICE_TEXTS = ("name", "description")
SERVICE_OPTIONAL = ("email", "url", "minimum_age", "maximum_age", "eligibility_sex", *KHMER_TEXTS)
# The phones are one text field; the organisation is the page itself, not a field on it.
RENAMED = {"phones": "phone", "organization_id": "_form"}


def organization_status_labels():
    return {"active": _("Active"), "suspended": _("Suspended"), "retired": _("Retired")}


def service_status_labels():
    return {
        "active": _("Active"),
        "inactive": _("Suspended (inactive)"),
        "temporarily closed": _("Temporarily closed"),
        "defunct": _("Retired (no longer exists)"),
    }


def _done(message, found):
    """Commit, say what was done, and show the organisation's or the service's page again."""
    db.session.commit()
    flash(message, "success")
    if isinstance(found, Organization):
        return redirect(url_for(".organization", organization_id=found.id))
    return redirect(url_for(".service_page", service_id=found.id))


# Organisations


def _organizations_page(values, errors, status=200):
    return list_and_form(
        "curation/organizations.html",
        service.list_organizations,
        values,
        errors,
        status,
        status_labels=organization_status_labels(),
        provinces=province_options(),
    )


@bp.get("/organizations")
@signed_in(COORDINATOR)
def organizations(principal):
    return _organizations_page({}, {})


@bp.post("/organizations")
@signed_in(COORDINATOR)
def create_organization(principal):
    check_csrf()
    form = request.form
    fields = {"name": form.get("name", ""), "description": form.get("description", "")}
    fields |= {name: form.get(name, "").strip() or None for name in KHMER_TEXTS}
    if form.get("province"):
        fields["province"] = form["province"]
    try:
        organization = service.create_organization(principal, **OrganizationCreate().load(fields))
    except (ValidationError, InvalidInput, Conflict) as exc:
        db.session.rollback()
        return _organizations_page(form, form_errors(exc, RENAMED), 422)
    return _done(_("%(name)s is now in the directory.", name=organization.name), organization)


def _organization_page(organization, values, errors, status=200):
    changes, _next = service.history(
        "organization", organization.id, {"limit": HISTORY_SHOWN, "cursor": None}
    )
    page = render_template(
        "curation/organization.html",
        organization=organization,
        services=sorted(organization.services, key=lambda s: s.name.lower()),
        changes=changes,
        organization_statuses=organization_status_labels(),
        service_statuses=service_status_labels(),
        provinces=province_options(),
        values=values,
        errors=errors,
    )
    return page, status


def _organization_values(organization):
    values = {field: getattr(organization, field) or "" for field in ORGANIZATION_FIELDS}
    phone = ", ".join(phone.number for phone in organization.phones)
    return {**values, "phone": phone, "status": organization.status}


@bp.get("/organizations/<uuid:organization_id>")
@signed_in(COORDINATOR)
def organization(organization_id, principal):
    found = service.get_organization(str(organization_id))
    return _organization_page(found, _organization_values(found), {})


@bp.post("/organizations/<uuid:organization_id>")
@signed_in(COORDINATOR)
def update_organization(organization_id, principal):
    check_csrf()
    form = request.form
    fields = {field: form.get(field, "").strip() or None for field in ORGANIZATION_FIELDS}
    fields["name"] = form.get("name", "")
    fields["description"] = form.get("description", "")
    fields["status"] = form.get("status", "")
    current = _organization_values(service.get_organization(str(organization_id)))
    fields |= _phone_changes(form, current)
    try:
        changes = OrganizationUpdate().load(fields)
        found = service.update_organization(principal, str(organization_id), changes)
    except (ValidationError, InvalidInput, Conflict) as exc:
        db.session.rollback()
        found = service.get_organization(str(organization_id))
        return _organization_page(found, form, form_errors(exc, RENAMED), 422)
    return _done(_("The changes to %(name)s are saved.", name=found.name), found)


@bp.post("/organizations/<uuid:organization_id>/verify")
@signed_in(COORDINATOR)
def verify_organization(organization_id, principal):
    check_csrf()
    found = service.verify_organization(principal, str(organization_id))
    return _done(_("%(name)s is marked as verified today.", name=found.name), found)


# Services


def _language_options(chosen):
    return [(code, language_name(code)) for code in sorted(set(LANGUAGES) | set(chosen))]


def _area_options():
    """(province code, name, [(district code, name)]) in the page's language."""
    return [
        (
            p["code"],
            area_name(p["code"]),
            [(d["code"], area_name(d["code"])) for d in p["districts"]],
        )
        for p in reference.provinces()
    ]


def _service_page(organization, found, values, errors, status=200):
    changes = []
    if found is not None:
        changes, _next = service.history(
            "service", found.id, {"limit": HISTORY_SHOWN, "cursor": None}
        )
    page = render_template(
        "curation/service.html",
        organization=organization,
        service=found,
        changes=changes,
        statuses=service_status_labels(),
        # Retiring goes through its own button, which asks once more, not through the form.
        editable_statuses=[
            (code, label)
            for code, label in service_status_labels().items()
            if code != RETIRED or (found is not None and found.status == RETIRED)
        ],
        sexes=SEXES,
        categories=category_options(),
        areas=_area_options(),
        languages_options=_language_options(values.getlist("languages")),
        values=values,
        errors=errors,
    )
    return page, status


def _service_values(found):
    """The form's values for a service as it is now."""
    values = MultiDict(
        {
            "name": found.name,
            "description": found.description or "",
            "name_km": found.name_km or "",
            "description_km": found.description_km or "",
            "email": found.email or "",
            "url": found.url or "",
            "minimum_age": "" if found.minimum_age is None else found.minimum_age,
            "maximum_age": "" if found.maximum_age is None else found.maximum_age,
            "eligibility_sex": found.eligibility_sex or "",
            "status": found.status,
            "phone": ", ".join(phone.number for phone in found.phones),
        }
    )
    for name, codes in (
        ("categories", found.category_codes),
        ("areas", found.area_codes),
        ("languages", found.language_codes),
    ):
        for code in codes:
            values.add(name, code)
    if found.accepting_referrals:
        values["accepting"] = "yes"
    return values


def _service_fields(form, current=None):
    """The form as the API's service fields; phones only when their text changed."""
    fields = {name: form.get(name, "") for name in SERVICE_TEXTS}
    fields |= {name: form.get(name, "").strip() or None for name in SERVICE_OPTIONAL}
    for name in ("categories", "areas", "languages"):
        fields[name] = form.getlist(name)
    fields["status"] = form.get("status", "active")
    return fields | _phone_changes(form, current)


def _phone_changes(form, current):
    """The phones typed as one text field, as the API's phones; nothing when the text is as
    it was (so their types and descriptions stay)."""
    phone_text = form.get("phone", "").strip()
    if current is not None and phone_text == current.get("phone", ""):
        return {}
    numbers = [part.strip() for part in phone_text.split(",") if part.strip()]
    return {"phones": [{"number": number} for number in numbers]}


@bp.get("/organizations/<uuid:organization_id>/services/new")
@signed_in(COORDINATOR)
def new_service(organization_id, principal):
    found = service.get_organization(str(organization_id))
    values = MultiDict({"status": "active", "accepting": "yes"})
    if found.province:
        values["areas"] = found.province
    return _service_page(found, None, values, {})


@bp.post("/organizations/<uuid:organization_id>/services")
@signed_in(COORDINATOR)
def create_service(organization_id, principal):
    check_csrf()
    form = request.form
    organization = service.get_organization(str(organization_id))
    fields = {
        **_service_fields(form),
        "organization_id": organization.id,
        "accepting_referrals": form.get("accepting") == "yes",
    }
    try:
        values = ServiceCreate().load(fields)
        values.pop("organization_id")
        created = service.create_service(principal, organization.id, values)
    except (ValidationError, InvalidInput, Conflict) as exc:
        db.session.rollback()
        return _service_page(organization, None, form, form_errors(exc, RENAMED), 422)
    return _done(_("The service %(name)s is in the directory.", name=created.name), created)


@bp.get("/services/<uuid:service_id>")
@signed_in(COORDINATOR)
def service_page(service_id, principal):
    found = service.get_service(str(service_id))
    return _service_page(found.organization, found, _service_values(found), {})


@bp.post("/services/<uuid:service_id>")
@signed_in(COORDINATOR)
def update_service(service_id, principal):
    check_csrf()
    form = request.form
    found = service.get_service(str(service_id))
    current = _service_values(found)
    try:
        if form.get("status") == RETIRED and found.status != RETIRED:
            raise ValidationError({"status": [_("Retire a service with its own button.")]})
        changes = ServiceFields().load(_service_fields(form, current))
        accepting = CapacityUpdate().load({"accepting_referrals": form.get("accepting") == "yes"})
        found = service.update_service(principal, found.id, changes)
        if accepting["accepting_referrals"] != found.accepting_referrals:
            service.update_capacity(principal, found.id, accepting)
    except (ValidationError, InvalidInput, Conflict) as exc:
        db.session.rollback()
        found = service.get_service(str(service_id))
        return _service_page(found.organization, found, form, form_errors(exc, RENAMED), 422)
    return _done(_("The changes to %(name)s are saved.", name=found.name), found)


@bp.post("/services/<uuid:service_id>/verify")
@signed_in(COORDINATOR)
def verify_service(service_id, principal):
    check_csrf()
    found = service.verify_service(principal, str(service_id))
    return _done(_("%(name)s is marked as verified today.", name=found.name), found)


@bp.get("/services/<uuid:service_id>/status")
@signed_in(COORDINATOR)
def confirm_retirement(service_id, principal):
    """Ask once more before retiring a service; suspending or reopening need no second look."""
    found = service.get_service(str(service_id))
    if request.args.get("status") != RETIRED or found.status == RETIRED:
        return redirect(url_for(".service_page", service_id=found.id))
    return confirmation_page(
        url_for(".set_service_status", service_id=found.id),
        title=_("Retire %(name)s?", name=found.name),
        happens=[
            _(
                "%(name)s is marked as no longer existing: caseworkers no longer find it and "
                "cannot refer to it.",
                name=found.name,
            ),
            _("Referrals already sent to it stay as they are."),
        ],
        lasting=[
            _(
                "The retirement is recorded in the directory's history for good, and partner "
                "networks are told. You can reopen the service later."
            ),
        ],
        button=_("Yes, retire the service"),
        back=url_for(".service_page", service_id=found.id),
        fields={"status": RETIRED},
    )


@bp.post("/services/<uuid:service_id>/status")
@signed_in(COORDINATOR)
def set_service_status(service_id, principal):
    """Suspend (inactive, temporarily closed), retire (defunct) or reopen a service."""
    check_csrf()
    if request.form.get("status") == RETIRED and not confirmed():
        return ask_first()
    changes = ServiceFields(only=("status",)).load({"status": request.form.get("status", "")})
    found = service.update_service(principal, str(service_id), changes)
    label = service_status_labels()[found.status]
    return _done(_("%(name)s is now: %(status)s.", name=found.name, status=label), found)
