"""What a peer hub does here: it reads the directory and sends referrals as a partner system
acting through its stand-in organisation, never as one of the network's organisations."""

from flask import request

from ..auth import tokens
from ..auth.principal import Principal
from ..errors import Problem
from ..extensions import db
from .models import Peer


class PeerPaused(Problem):
    status, slug, title = 503, "peer-paused", "This hub has paused the peering"

    def __init__(self):
        super().__init__(
            "This hub's coordinators have paused the peering: try again later.",
            headers={"Retry-After": "600"},
        )


def peer_of(principal):
    """The peer a principal acts for, or None for anyone else. A paused peer is told to come
    back later (503): what it forwards meanwhile waits in its outbox, and its sync changes
    nothing."""
    if principal is None or "federation" not in principal.scopes:
        return None
    peer = db.session.scalar(db.select(Peer).filter_by(organization_id=principal.organization_id))
    if peer is not None and peer.status == "paused":
        raise PeerPaused()
    return peer if peer is not None and peer.status == "active" else None


def asking_peer():
    """The active peer whose federation token this request carries; None for any other caller,
    an anonymous one included (a token that fails to verify is not a peer's)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    try:
        claims = tokens.verify(token.strip())
    except Problem:
        return None
    return peer_of(Principal.from_claims(claims))


def referrer(peer, given):
    """Who referred at the peer's end, as the peer says, under the peer's name as known here."""
    return {
        "hub": peer.name,
        "caseworker": (given or {}).get("caseworker"),
        "organization": (given or {}).get("organization"),
    }
