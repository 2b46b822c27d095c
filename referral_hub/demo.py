"""Demo organisations, users and API clients for a local hub (development only), and the two
networks of the federation demo, which share the seed directory out between them."""

import logging
from dataclasses import dataclass

from .audit import service as audit_service
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


@dataclass(frozen=True)
class Network:
    """One hub of the federation demo: its share of the seed directory and its demo accounts."""

    slug: str  # its database is instance/<slug>.sqlite
    name: str
    organizations: list
    users: list
    clients: list
    # Whether it has NORTH_WEST's seed organisations (True) or the others (False); None: all.
    north_west: bool | None

    def keeps(self, seed_organization):
        """Whether this network has the seed organisation: each is in exactly one of NETWORKS."""
        return (
            self.north_west is None or (seed_organization["name"] in NORTH_WEST) == self.north_west
        )


# Seed organisations whose services are in Siem Reap, Battambang or Banteay Meanchey (Poipet):
# the north-west's network. The others (Phnom Penh, Preah Sihanouk, Kampot...) are Phnom Penh's.
NORTH_WEST = {
    "TPO Cambodia",
    "Cambodian Children's Trust",
    "Kaliyan Mith",
    "Krousar Thmey",
    "Damnok Toek",
    "Friends-International",
    "Children's Future International",
    "Rehabilitation Center, Battambang",
    "Komar Rikreay",
}
ONE_HUB = Network("one-hub", "This network", ORGANIZATIONS, USERS, DEMO_CLIENTS, None)
NETWORKS = [
    Network(
        "phnom-penh",
        "Phnom Penh network",
        ORGANIZATIONS[:1],
        [user for user in USERS if user[1] in {"3PC Network Secretariat", "M'Lop Tapang"}],
        DEMO_CLIENTS[:1],
        False,
    ),
    Network(
        "siem-reap",
        "Siem Reap network",
        [
            (
                "Siem Reap Network Secretariat",
                "17",
                "Coordinates the Siem Reap child-protection network.",
            ),
            *ORGANIZATIONS[1:],
        ],
        [
            (
                "coordinator@siemreap-network.example.org",
                "Siem Reap Network Secretariat",
                ["coordinator"],
                [],
            ),
            ("admin@kaliyanmith.example.org", "Kaliyan Mith", ["org_admin", "caseworker"], []),
            *[user for user in USERS if user[1] in {"Kaliyan Mith", "DoSVY Siem Reap"}],
        ],
        DEMO_CLIENTS[1:],
        True,
    ),
]


def token_command(issuer, client):
    """The curl line that gets a token for a demo client, as the demo prints it."""
    client_id, secret, _ = client
    return (
        f"curl -s -u {client_id}:{secret} "
        f"-d grant_type=client_credentials -d scope=directory:read {issuer}/oauth/token"
    )


def load(network=ONE_HUB):
    """Load a network's share of the seed directory and its demo accounts once; False when they
    were there already."""
    if db.session.scalar(db.select(User).filter_by(email=network.users[0][0])):
        return False
    hsds.load_seed(network.keeps)
    for name, province, description in network.organizations:
        directory_service.create_organization(None, name, description, province)
    organizations = dict(db.session.execute(db.select(Organization.name, Organization.id)).all())
    for email, organization, roles, provinces in network.users:
        auth_service.create_user(
            None,
            organizations[organization],
            email,
            roles,
            provinces=provinces,
            password=DEMO_PASSWORD,
        )
    for client_id, secret, organization in network.clients:
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
    _seal_loaded_entries()
    return True


def _seal_loaded_entries():
    """Chain the load's audit entries now. They waited for the load itself (the seed import and
    the password hashing, seconds), which is no news: the sequencer's lateness warning would
    only alarm whoever tries the demo."""
    audit_log = logging.getLogger(audit_service.__name__)
    level = audit_log.level
    audit_log.setLevel(logging.ERROR)
    try:
        audit_service.seal_all()
    finally:
        audit_log.setLevel(level)
