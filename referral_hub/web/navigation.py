"""The menu: each page a role may use, shown only once the page exists."""

from flask import current_app, g
from flask_babel import lazy_gettext as _l

ANY_ROLE = ()
OVERSIGHT_ROLES = ("focal_point", "coordinator")
PARTNER_ROLES = ("caseworker", "org_admin")
MENU = [
    ("referral_pages.home", _l("My referrals"), PARTNER_ROLES),
    ("directory_pages.find", _l("Find a service"), ANY_ROLE),
    ("admin_pages.users", _l("Users"), ("org_admin", "coordinator")),
    ("admin_pages.clients", _l("API clients"), ("org_admin", "coordinator")),
    ("callback_pages.subscriptions", _l("Callbacks"), ("org_admin",)),
    ("notification_pages.messages", _l("Notifications sent"), ("org_admin",)),
    ("capacity_pages.capacity", _l("Capacity"), ("org_admin",)),
    ("curation_pages.organizations", _l("Directory"), ("coordinator",)),
    ("network_pages.overdue", _l("Overdue and escalated"), ("coordinator",)),
    ("peer_pages.peers", _l("Peer hubs"), ("coordinator",)),
    ("audit_pages.log", _l("Audit log"), ("coordinator",)),
    ("report_pages.dashboard", _l("Dashboard"), OVERSIGHT_ROLES),
    ("auth_pages.profile", _l("Your profile"), ANY_ROLE),
    ("notification_pages.preferences", _l("My notifications"), ANY_ROLE),
]


def lands_on_dashboard(principal):
    """A focal point or coordinator who neither sends nor receives referrals starts on the
    dashboard: their own "My referrals" would always be empty."""
    return principal.has_role(*OVERSIGHT_ROLES) and not principal.has_role(*PARTNER_ROLES)


def menu():
    principal = g.get("principal")
    if principal is None:
        return []
    return [
        (endpoint, label)
        for endpoint, label, roles in MENU
        if endpoint in current_app.view_functions and (not roles or principal.has_role(*roles))
    ]
