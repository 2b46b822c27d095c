"""Who to call about a referral: the sending caseworker, the assignee, the service, and the
network's coordinators when the directory has no number to give."""

from dataclasses import dataclass

from flask import g

from ..auth.models import Membership, User
from ..directory.models import Organization, Service
from ..extensions import db

COORDINATORS_SHOWN = 3


@dataclass(frozen=True)
class Reachable:
    """A person, service or organisation as the pages show it: a name, phones and emails."""

    name: str
    phones: tuple = ()
    emails: tuple = ()

    @property
    def unreachable(self):
        return not (self.phones or self.emails)


def person(user):
    """A user as partners see them; no user (a system sent it), None."""
    if user is None:
        return None
    return Reachable(user.name, (user.phone,) if user.phone else (), (user.email,))


def user_of(actor):
    """The user an actor string ("user:<id>") names, if it names one of this hub's users."""
    kind, _, user_id = (actor or "").partition(":")
    return db.session.get(User, user_id) if kind == "user" else None


def organization(found):
    return Reachable(
        found.name,
        tuple(phone.number for phone in found.phones),
        (found.email,) if found.email else (),
    )


def service(found):
    """The service's own numbers and desks; its organisation's when it has none."""
    phones = [phone.number for phone in found.phones]
    phones += [contact.phone for contact in found.contacts if contact.phone]
    emails = [found.email] if found.email else []
    emails += [contact.email for contact in found.contacts if contact.email]
    if not (phones or emails):
        return organization(found.organization)
    return Reachable(found.name, tuple(dict.fromkeys(phones)), tuple(dict.fromkeys(emails)))


def network_coordinators():
    """Whom to ask when the directory has no number: the coordinators (once per request)."""
    if "network_coordinators" not in g:
        users = db.session.scalars(
            db.select(User)
            .join(Membership)
            .where(Membership.role == "coordinator", User.active.is_(True))
            .order_by(User.email)
            .limit(COORDINATORS_SHOWN)
        ).all()
        g.network_coordinators = [person(user) for user in users]
    return g.network_coordinators


def people_to_call(referral):
    """The people and desks each party calls about this referral."""
    sender = user_of(referral.created_by) if referral.peer_id is None else None
    assignee = referral.assigned_to_user_id and db.session.get(User, referral.assigned_to_user_id)
    offered = db.session.get(Service, referral.service_id)
    return {
        "sender": person(sender),
        "sending_organization": organization(
            db.session.get(Organization, referral.sender_organization_id)
        ),
        "assignee": person(assignee or None),
        "service": service(offered),
    }
