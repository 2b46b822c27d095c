"""Rules for the organisations of the network."""

from sqlalchemy.exc import IntegrityError

from ..errors import Conflict, NotFound
from ..extensions import db
from ..pagination import paginate
from .models import Organization


def create_organization(principal, name, description="", province=None):
    """Admit an organisation to the network (coordinators; principal None is the command line)."""
    if principal is not None:
        principal.require_role("coordinator")
    organization = Organization(name=name.strip(), description=description, province=province)
    db.session.add(organization)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(
            "An organisation with this name exists already.",
            errors=[{"field": "name", "message": "Taken."}],
        ) from None
    return organization


def list_organizations(page_args):
    return paginate(db.select(Organization), Organization.name, Organization.id, page_args)


def get_organization(organization_id):
    organization = db.session.get(Organization, organization_id)
    if organization is None:
        raise NotFound("No such organisation.")
    return organization
