"""Peering: a coordinator invites a peer hub (it gets a client here) or adds one (this hub
syncs from it and forwards to it). Each direction needs only its own credentials."""

import contextlib

from flask import current_app
from sqlalchemy import func

from .. import clock
from ..audit import service as audit
from ..auth import revocation
from ..auth import service as auth_service
from ..auth.models import OAuthClient
from ..callbacks import targets
from ..directory.models import PEER_STAND_IN, Organization, Service
from ..errors import Conflict, InvalidInput, NotFound
from ..extensions import db
from ..referrals.models import Referral
from . import remote
from .models import Forward, Peer

# What a peer's client may do here: read the directory, send referrals and follow them.
PEER_SCOPES = [
    "federation",
    "directory:read",
    "referrals:read",
    "referrals:write",
    "callbacks:manage",
]
CALLBACK_EVENTS = ["referral.status_changed"]


def _refuse(field, message, problem=InvalidInput):
    return problem(message, errors=[{"field": field, "message": message}])


def _audit(actor, action, peer, details=None):
    audit.record(actor, None, action, "peer", peer.id, details)


def find(name_or_id):
    """A peer by name or id, removed ones included; 404 if there is none."""
    peer = db.session.scalar(
        db.select(Peer).where((Peer.name == name_or_id) | (Peer.id == name_or_id))
    )
    if peer is None:
        raise NotFound("No such peer.")
    return peer


def added_peers():
    return db.session.scalars(
        db.select(Peer).where(Peer.url.is_not(None), Peer.status == "active").order_by(Peer.name)
    ).all()


def _named(name):
    return db.session.scalar(db.select(Peer).filter_by(name=name))


def of_organization(organization_id):
    """The peer whose stand-in organisation this is, or None."""
    return db.session.scalar(db.select(Peer).filter_by(organization_id=organization_id))


def invite(actor, name):
    """Create the peer (or complete one added already) and its federation client here.

    Returns the JSON the peer's coordinator needs; the secret is shown only now."""
    peer = _named(name) or Peer(name=name)
    if peer.invited:
        raise _refuse("name", "This peer has been invited already.", Conflict)
    db.session.add(peer)
    db.session.flush()
    stand_in = Organization(
        name=name,
        description="A peer hub: referrals it forwards come from its network.",
        status=PEER_STAND_IN,
        peer_id=peer.id,
    )
    db.session.add(stand_in)
    db.session.flush()
    peer.organization_id = stand_in.id
    client, secret = auth_service.create_client(
        None,
        stand_in.id,
        f"{name} (peer hub)",
        PEER_SCOPES,
        ["client_credentials"],
        "client_secret_basic",
    )
    _audit(actor, "peer.invited", peer)
    db.session.flush()
    issuer = current_app.config["HUB_ISSUER"]
    return {
        "peer_id": peer.id,
        "client_id": client.client_id,
        "client_secret": secret,
        "token_url": f"{issuer}/oauth/token",
        "api_url": issuer,
    }


def _check_peer(url, client_id, secret):
    """The peer is what it says (its metadata names this URL as issuer) and lets us in."""
    try:
        targets.check_url(url)
    except targets.TargetRefused as exc:
        raise _refuse("url", str(exc)) from None
    try:
        issuer = remote.metadata(url).get("issuer")
    except remote.PeerUnreachable as exc:
        raise _refuse("url", f"No OAuth metadata at this URL: {exc}") from None
    if not isinstance(issuer, str) or issuer.rstrip("/") != url:
        raise _refuse("url", f"The hub at this URL names another issuer: {issuer!r}.")
    try:
        remote.fetch_token(url, client_id, secret)
    except remote.PeerUnreachable:
        raise _refuse("client_secret", "The peer gives no token for these credentials.") from None


def add(actor, name, url, client_id, secret):
    """Register a peer to sync from and forward to, after checking it; nothing is stored if a
    check fails. Subscribes at the peer to the status callbacks of what we forward."""
    url = url.rstrip("/")
    _check_peer(url, client_id, secret)
    peer = _named(name) or Peer(name=name)
    if peer.added and peer.status != "removed":
        raise _refuse("name", "This peer has been added already.", Conflict)
    peer.status, peer.removed_at, peer.url, peer.remote_client_id = "active", None, url, client_id
    peer.sync_watermark, peer.next_sync_at, peer.sync_failures = None, clock.now(), 0
    db.session.add(peer)
    db.session.flush()
    peer.remote_client_secret_data = remote.seal(peer.id, "client", secret)
    callback_url = f"{current_app.config['HUB_ISSUER']}/federation/callbacks/{peer.id}"
    try:
        subscription, _ = remote.Peer(peer).call(
            "POST",
            "/api/v1/subscriptions",
            json={"url": callback_url, "event_types": CALLBACK_EVENTS},
            ok=(201,),
        )
    except remote.PeerUnreachable as exc:
        raise _refuse("url", f"The peer refused our callback subscription: {exc}") from None
    peer.remote_subscription_id = subscription.get("id")
    peer.callback_secret_data = remote.seal(peer.id, "callbacks", str(subscription.get("secret")))
    _audit(actor, "peer.added", peer)
    db.session.flush()
    return peer


def set_status(actor, name_or_id, status):
    """Pause or resume: a paused peer is neither synced nor forwarded to, and its callbacks and
    requests here are refused."""
    peer = find(name_or_id)
    if peer.status == "removed":
        raise _refuse("name", "This peer has been removed.", Conflict)
    peer.status = status
    _audit(actor, f"peer.{'paused' if status == 'paused' else 'resumed'}", peer)
    db.session.flush()
    return peer


def remove(actor, name_or_id):
    """End the peering both ways; referrals already exchanged stay, marked as a former peer's,
    and the peer's services leave the directory."""
    peer = find(name_or_id)
    if peer.status == "removed":
        raise _refuse("name", "This peer has been removed already.", Conflict)
    if peer.remote_subscription_id and peer.status == "active":
        # Best effort: its callbacks are refused here from now on anyway.
        with contextlib.suppress(remote.PeerUnreachable):
            remote.Peer(peer).call(
                "DELETE", f"/api/v1/subscriptions/{peer.remote_subscription_id}", ok=(204, 404)
            )
    peer.status, peer.removed_at = "removed", clock.now()
    peer.remote_client_secret_data = peer.callback_secret_data = None
    for client in db.session.scalars(
        db.select(OAuthClient).filter_by(organization_id=peer.organization_id)
    ):
        client.revoked_at = clock.now()
        revocation.revoke(f"client:{client.client_id}")
    mirrored = db.select(Organization.id).where(
        Organization.peer_id == peer.id, Organization.status != PEER_STAND_IN
    )
    db.session.execute(
        db.update(Organization).where(Organization.id.in_(mirrored)).values(status="retired")
    )
    db.session.execute(  # so that a peering again applies everything anew
        db.update(Service).where(Service.peer_id == peer.id).values(peer_digest=None)
    )
    db.session.execute(
        db.update(Forward)
        .where(Forward.peer_id == peer.id, Forward.status == "pending")
        .values(status="failed", last_error="The peer was removed.")
    )
    _audit(actor, "peer.removed", peer)
    db.session.flush()
    return peer


def set_trusted(actor, name_or_id, trusted):
    """Whether confidential locations (safe houses) cross to this peer; the default is no."""
    peer = find(name_or_id)
    peer.trusted_with_confidential = trusted
    _audit(actor, "peer.trust_changed", peer, {"status": "trusted" if trusted else "untrusted"})
    db.session.flush()
    return peer


def _counts(column, *conditions):
    rows = db.session.execute(
        db.select(column, func.count()).where(*conditions).group_by(column)
    ).all()
    return dict(rows)


def summaries():
    """Every peer with what a coordinator watches: state, last sync, services and flows."""
    peers = db.session.scalars(db.select(Peer).order_by(Peer.name)).all()
    services = _counts(Service.peer_id, Service.peer_id.is_not(None), Service.status == "active")
    stand_ins = {p.organization_id: p.id for p in peers if p.organization_id}
    forwarded = _counts(Referral.peer_id, Referral.forwarding.is_not(None))
    received = {
        stand_ins[org]: count
        for org, count in _counts(
            Referral.sender_organization_id,
            Referral.sender_organization_id.in_(list(stand_ins)),
        ).items()
    }
    failing = _counts(Forward.peer_id, Forward.status.in_(("failed", "refused")))
    pending = _counts(Forward.peer_id, Forward.status == "pending")
    return [
        summary(
            peer,
            services=services.get(peer.id, 0),
            forwarded=forwarded.get(peer.id, 0),
            received=received.get(peer.id, 0),
            failed_forwards=failing.get(peer.id, 0),
            pending_forwards=pending.get(peer.id, 0),
        )
        for peer in peers
    ]


def summary(peer, **figures):
    return {
        "id": peer.id,
        "name": peer.name,
        "status": peer.status,
        "url": peer.url,
        "invited": peer.invited,
        "added": peer.added,
        "trusted_with_confidential": peer.trusted_with_confidential,
        "created_at": peer.created_at,
        "removed_at": peer.removed_at,
        "last_sync_at": peer.last_sync_at,
        "last_sync": peer.last_sync_outcome,
        "sync_failures": peer.sync_failures,
        **figures,
    }
