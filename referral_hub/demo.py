"""Demo organisations, users and API clients for a local hub (development only)."""

from .auth import service as auth_service
from .auth.credentials import digest
from .auth.models import User
from .directory import hsds
from .directory import service as directory_service
from .directory.models import Organization
from .extensions import db

DEMO_PASSWORD = "demo-password-2026"  # documented demo credential
DEMO_CLIENTS = [
    # (client id, secret, organisation): documented demo credentials, never for real use
    ("demo-partner", "demo-partner-secret", "M'Lop Tapang"),
    ("demo-kaliyan-mith", "demo-kaliyan-mith-secret", "Kaliyan Mith"),
]
DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, _ = DEMO_CLIENTS[0]
ALL_API_SCOPES = [
    "directory:read",
    "directory:write",
    "referrals:read",
    "referrals:write",
    "callbacks:manage",
    "reports:read",
]

ORGANIZATIONS = [
    # (name, province code, description): the seed directory has the NGOs; these are added.
    (
        "3PC Network Secretariat",
        "12",
        "Coordinates the Partnership Program for the Protection of Children.",
    ),
    (
        "DoSVY Siem Reap",
        "17",
        "Provincial Department of Social Affairs, Veterans and Youth Rehabilitation.",
    ),
]

USERS = [
    # (email, organisation, roles, provinces)
    ("coordinator@example.org", "3PC Network Secretariat", ["coordinator"], []),
    ("admin@mloptapang.example.org", "M'Lop Tapang", ["org_admin", "caseworker"], []),
    ("caseworker@mloptapang.example.org", "M'Lop Tapang", ["caseworker"], []),
    ("caseworker@kaliyanmith.example.org", "Kaliyan Mith", ["caseworker"], []),
    ("focal.point@dosvy-siemreap.example.org", "DoSVY Siem Reap", ["focal_point"], ["17"]),
]


def load():
    """Load the seed directory and the demo accounts once; False when they were there already."""
    if db.session.scalar(db.select(User).filter_by(email=USERS[0][0])):
        return False
    hsds.load_seed()
    for name, province, description in ORGANIZATIONS:
        directory_service.create_organization(None, name, description, province)
    organizations = dict(db.session.execute(db.select(Organization.name, Organization.id)).all())
    for email, organization, roles, provinces in USERS:
        auth_service.create_user(
            None,
            organizations[organization],
            email,
            roles,
            provinces=provinces,
            password=DEMO_PASSWORD,
        )
    for client_id, secret, organization in DEMO_CLIENTS:
        client, _ = auth_service.create_client(
            None,
            organizations[organization],
            f"{organization} case system (demo)",
            ALL_API_SCOPES,
            ["client_credentials"],
            "client_secret_basic",
        )
        client.client_id, client.secret_hash = client_id, digest(secret)
    db.session.commit()
    return True
