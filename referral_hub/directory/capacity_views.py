"""The quick capacity page: an organisation's admins say what is free in each of its services."""

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from marshmallow import ValidationError

from ..csrf import check_csrf
from ..errors import InvalidInput, NotFound
from ..extensions import db
from ..web.error_pages import page_blueprint
from ..web.forms import form_errors
from ..web.session import signed_in
from . import service
from .models import CAPACITY_STATUSES
from .schemas import CapacityUpdate

bp = page_blueprint("capacity_pages", __name__)
ADMIN = "org_admin"


def _capacity_page(principal, failed=None, values=None, errors=None, status=200):
    """Every service of the organisation; `failed` is the one whose form is shown with errors."""
    organization = service.get_organization(principal.organization_id)
    page = render_template(
        "capacity/capacity.html",
        organization=organization,
        services=sorted(organization.services, key=lambda found: found.name.lower()),
        statuses=CAPACITY_STATUSES,
        failed=failed,
        typed=values or {},
        errors=errors or {},
    )
    return page, status


@bp.get("/capacity")
@signed_in(ADMIN)
def capacity(principal):
    return _capacity_page(principal)


def _own_service(principal, service_id):
    """Only the organisation's own services are on this page, whoever else may change them."""
    found = service.get_service(service_id)
    if found.organization_id != principal.organization_id:
        raise NotFound("No such service.")
    return found


@bp.post("/capacity/<uuid:service_id>")
@signed_in(ADMIN)
def update(service_id, principal):
    check_csrf()
    found = _own_service(principal, str(service_id))
    form = request.form
    fields = {
        "capacity_status": form.get("capacity_status", ""),
        "places_free": form.get("places_free", "").strip() or None,
        "accepting_referrals": form.get("accepting_referrals", ""),
    }
    try:
        service.update_capacity(principal, found.id, CapacityUpdate().load(fields))
    except (ValidationError, InvalidInput) as exc:
        db.session.rollback()
        return _capacity_page(principal, found.id, form, form_errors(exc), 422)
    db.session.commit()
    flash(_("The capacity of %(name)s is saved.", name=found.name), "success")
    return redirect(url_for(".capacity", _anchor=f"service-{found.id}"))
