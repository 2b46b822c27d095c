"""Who may see a referral, and which of its personal data each party may see."""

from sqlalchemy import or_, select, true

from .. import clock
from ..directory.models import Location, Organization, Service, ServiceAtLocation
from ..extensions import db
from .models import UNANSWERED_STATUSES, Referral

SENDER, RECEIVER, COORDINATOR, FOCAL_POINT = "sender", "receiver", "coordinator", "focal_point"


def consent_in_force(referral):
    """Active, and not past its expiry even if the expiry job has not run yet."""
    if referral.consent_status != "active":
        return False
    return referral.consent_expires_at is None or referral.consent_expires_at > clock.now()


def party(principal, referral):
    """The principal's standing towards the referral, or None when it must not know it exists."""
    if principal.organization_id == referral.sender_organization_id:
        return SENDER
    if principal.organization_id == referral.receiver_organization_id:
        return RECEIVER
    if principal.has_role("coordinator"):
        return COORDINATOR
    if principal.has_role("focal_point") and focal_reasons(principal, referral):
        return FOCAL_POINT
    return None


CHILD_PROVINCE, SERVICE_PROVINCE = "child_province", "service_province"
REASONS = (CHILD_PROVINCE, SERVICE_PROVINCE)


def services_in(provinces):
    """The services in these provinces: given at a location there, or of an organisation based
    there. A child from one province is often helped by a service in another."""
    provinces = sorted(provinces)
    at_location = (
        select(ServiceAtLocation.service_id)
        .join(Location, Location.id == ServiceAtLocation.location_id)
        .where(Location.province.in_(provinces))
    )
    of_organization = (
        select(Service.id)
        .join(Organization, Organization.id == Service.organization_id)
        .where(Organization.province.in_(provinces))
    )
    return at_location.union(of_organization)


def reason_conditions(provinces):
    """{reason: SQL condition}: why a focal point of these provinces knows of a referral."""
    return {
        CHILD_PROVINCE: Referral.subject_province.in_(sorted(provinces)),
        SERVICE_PROVINCE: Referral.service_id.in_(services_in(provinces)),
    }


def focal_reasons(principal, referral):
    """Why a focal point knows of the referral: the child's province, the receiving service's
    province, both, or neither (an empty list)."""
    reasons = []
    if referral.subject_province in principal.provinces:
        reasons.append(CHILD_PROVINCE)
    in_service_province = db.session.scalar(
        select(Service.id).where(
            Service.id == referral.service_id, Service.id.in_(services_in(principal.provinces))
        )
    )
    if in_service_province is not None:
        reasons.append(SERVICE_PROVINCE)
    return reasons


def known_to_parts(principal):
    """`known_to` as conditions any one of which suffices, so that a list can read each one
    through its own index."""
    if principal.has_role(COORDINATOR):
        return [true()]
    own = principal.organization_id
    parts = [Referral.sender_organization_id == own, Referral.receiver_organization_id == own]
    if principal.has_role(FOCAL_POINT):
        parts += reason_conditions(principal.provinces).values()
    return parts


def known_to(principal):
    """`party` as an SQL condition: the referrals the principal may know exist."""
    return or_(*known_to_parts(principal))


def visible_categories(standing, referral):
    """The personal data categories this party sees now."""
    sent = referral.categories_sent
    if referral.erased_at is not None:
        return []
    if standing == SENDER:
        return sent
    if not consent_in_force(referral):
        return []
    if standing == RECEIVER:
        return [c for c in sent if c in referral.consent_categories]
    if standing == FOCAL_POINT and referral.consent_share_identity_with_government:
        return [c for c in sent if c == "identity" and c in referral.consent_categories]
    return []


def is_overdue(referral):
    return referral.status in UNANSWERED_STATUSES and (
        referral.overdue or referral.deadline_at <= clock.now()
    )


def overdue_condition():
    """`is_overdue` as an SQL condition."""
    return Referral.status.in_(UNANSWERED_STATUSES) & (
        Referral.overdue | (Referral.deadline_at <= clock.now())
    )
