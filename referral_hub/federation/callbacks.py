"""Status callbacks from a peer hub about referrals forwarded there: verified (signature,
timestamp, webhook-id never seen before), then the peer's new steps are mirrored here."""

import hmac
import json
import time

from sqlalchemy.exc import IntegrityError

from ..audit import service as audit
from ..callbacks.signing import signature
from ..errors import Conflict, InvalidInput, NotFound, Problem, Unauthorized
from ..extensions import db
from ..referrals.models import Referral
from ..referrals.service import PreconditionFailed
from . import forwarding, remote
from .models import Peer, ReceivedCallback

TOLERANCE_SECONDS = 300  # Standard Webhooks' suggestion
ATTEMPTS = 3


class PeerDown(Problem):
    status, slug, title = 503, "peer-unreachable", "The peer hub did not answer"


def _peer(peer_id):
    peer = db.session.get(Peer, peer_id)
    if peer is None or peer.status != "active" or not peer.callback_secret_data:
        raise NotFound("No such peer.")
    return peer


def verify(peer, webhook_id, timestamp, signatures, body, now=None):
    """Refuse a callback the peer did not sign, or signed too long ago or too far ahead."""
    now = time.time() if now is None else now
    if not (webhook_id and timestamp and signatures) or len(webhook_id) > 100:
        raise Unauthorized("Signed callbacks only.", error="invalid_request")
    if not timestamp.isdigit() or abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        raise Unauthorized("The callback's timestamp is outside the tolerance.")
    secret = remote.unseal(peer.id, "callbacks", peer.callback_secret_data)
    expected = signature(secret, webhook_id, timestamp, body)
    if not any(hmac.compare_digest(expected, given) for given in signatures.split()):
        raise Unauthorized("The callback's signature does not match.")


def _mirror_steps(peer, remote_id):
    """Read the referral back from the peer and mirror its new steps. Callbacks for one
    referral come close together (received, then accepted): each takes the referral's row
    first (PostgreSQL), and one that lost a race to another process anyway reads again."""
    for _ in range(ATTEMPTS):
        referral = db.session.scalar(
            db.select(Referral)
            .filter_by(peer_id=peer.id, remote_referral_id=remote_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if referral is None or referral.forwarding is None:
            raise NotFound("No referral of ours has this id.")
        try:
            forwarding.refresh(remote.Peer(peer), referral, peer)
            return referral
        except remote.PeerUnreachable as exc:
            db.session.rollback()
            raise PeerDown(f"Could not read the referral back: {exc}") from None
        except PreconditionFailed:
            continue  # rolled back: read it again, with the other callback's steps
    raise PeerDown("The referral kept changing meanwhile; send the callback again.")


def receive(peer_id, webhook_id, timestamp, signatures, body):
    """Verify and apply one callback; a webhook-id seen before is refused (409)."""
    peer = _peer(peer_id)
    verify(peer, webhook_id, timestamp, signatures, body)
    try:
        event = json.loads(body)
        remote_id = event["data"]["referral_id"]
    except (ValueError, KeyError, TypeError):
        message = "Expected a status callback with data.referral_id."
        raise InvalidInput(
            message, errors=[{"field": "data.referral_id", "message": message}]
        ) from None
    if db.session.scalar(
        db.select(ReceivedCallback.id).filter_by(peer_id=peer.id, webhook_id=webhook_id)
    ):
        raise Conflict("This webhook-id was received already.")
    referral = _mirror_steps(peer, str(remote_id))
    db.session.add(ReceivedCallback(peer_id=peer.id, webhook_id=webhook_id))
    audit.record(f"peer:{peer.id}", None, "federation.callback_received", "referral", referral.id)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise Conflict("This webhook-id was received already.") from None
    return referral
