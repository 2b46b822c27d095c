"""Forwarding referrals to the peer hub of their service, through an outbox written with the
change: at least once and in order per referral, on the callbacks' retry schedule. The peer's
Idempotency-Key and state checks make a repeat harmless. Then the peer's receiver answers
there, and its status callbacks bring the answer back onto the sender's copy here."""

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import aliased

from .. import clock, crypto
from ..audit import service as audit
from ..auth.models import User
from ..background import WokenLoop
from ..callbacks.attempts import next_try
from ..directory.models import Organization
from ..extensions import db
from ..referrals import service as referrals
from ..referrals import visibility
from ..referrals.models import Referral
from . import remote
from .models import Forward, Peer

log = logging.getLogger(__name__)
CLAIM_SIZE = 20
# Answers of the peer that no retry will change: the forward is refused, and the sender told.
FINAL_STATUSES = {400, 403, 404, 409, 410, 412, 413, 415, 422}


# Claiming


def _due(moment, limit):
    earlier = aliased(Forward)
    blocked = exists(
        select(earlier.id).where(
            earlier.referral_id == Forward.referral_id,
            earlier.id < Forward.id,
            earlier.status == "pending",
        )
    )
    return db.session.scalars(
        select(Forward.id)
        .join(Peer, Peer.id == Forward.peer_id)
        .where(
            Forward.status == "pending",
            Forward.next_attempt_at <= moment,
            or_(Forward.leased_until.is_(None), Forward.leased_until < moment),
            Peer.status == "active",
            ~blocked,
        )
        .order_by(Forward.id)
        .limit(limit)
    ).all()


def claim(limit=CLAIM_SIZE):
    """Lease due forwards; a conditional UPDATE per forward, so two workers never share one.
    The lease is the callbacks': it outlasts an attempt (see callbacks.attempts.check_lease)."""
    moment = clock.now()
    lease = timedelta(seconds=current_app.config["CALLBACK_LEASE_SECONDS"])
    claimed = []
    for forward_id in _due(moment, limit):
        leased = db.session.execute(
            update(Forward)
            .where(
                Forward.id == forward_id,
                or_(Forward.leased_until.is_(None), Forward.leased_until < moment),
            )
            .values(leased_until=moment + lease)
        )
        if leased.rowcount:
            claimed.append(forward_id)
    db.session.commit()
    return claimed


def forward_due(limit=CLAIM_SIZE):
    """Claim due forwards and carry each; returns how many were claimed."""
    claimed = claim(limit)
    for forward_id in claimed:
        try:
            carry(forward_id)
            db.session.commit()
        except Exception as exc:  # a fault of ours: counted as an attempt, so it cannot loop
            log.exception("forward %s failed", forward_id)
            db.session.rollback()
            forward = db.session.get(Forward, forward_id)
            _failed(forward, None, remote.PeerUnreachable(f"internal error: {type(exc).__name__}"))
            db.session.commit()
    return len(claimed)


# Carrying


def carry(forward_id):
    """One attempt at a claimed forward; its outcome is recorded in the session."""
    forward = db.session.get(Forward, forward_id)
    referral = db.session.get(Referral, forward.referral_id)
    peer = db.session.get(Peer, forward.peer_id)
    api = remote.Peer(peer)
    try:
        ACTIONS[forward.action](api, referral, peer)
    except remote.PeerUnreachable as exc:
        _failed(forward, referral, exc)
        return
    forward.status, forward.done_at, forward.leased_until = "done", clock.now(), None
    audit.record("system", None, f"referral.forwarded.{forward.action}", "referral", referral.id)


def _failed(forward, referral, exc):
    forward.attempts += 1
    forward.last_error = str(exc)[:300]
    forward.leased_until = None
    if exc.status_code in FINAL_STATUSES:
        forward.status = "refused"
        if forward.action == "create":
            referral.forwarding = "refused"
        return
    step = next_try(forward.attempts, None)
    forward.status = step.get("status", "pending")
    forward.next_attempt_at = step.get("next_attempt_at", forward.next_attempt_at)


def _send(api, referral, peer):
    body, _ = api.call(
        "POST",
        "/api/v1/referrals",
        json=forwarded_body(referral),
        headers={"Idempotency-Key": f"forward-{referral.id}"},
        ok=(200, 201),
    )
    referral.remote_referral_id = body["id"]
    referral.forwarding, referral.forwarded_at = "forwarded", clock.now()
    # Committed before reading it back: the peer's first callback may come before that read
    # ends, and must find the referral by the peer's id. Killed here, the repeat of the POST
    # returns the same referral (Idempotency-Key).
    db.session.commit()
    try:
        _lock(referral)  # as a callback for it does: the two mirror one after the other
        refresh(api, referral, peer)
    except (remote.PeerUnreachable, referrals.PreconditionFailed):
        # It is there; the peer's next callback (or the one that just changed it) brings
        # every step back.
        db.session.rollback()
        log.warning("referral %s forwarded; reading it back failed", referral.id)


def _lock(referral):
    """Take the referral's row until the transaction ends (PostgreSQL; SQLite has one writer)."""
    db.session.execute(select(Referral.id).where(Referral.id == referral.id).with_for_update())


def _withdraw(api, referral, peer):
    current, _ = api.call("GET", f"/api/v1/referrals/{referral.remote_referral_id}")
    if current["status"] in ("withdrawn", "declined", "completed", "expired"):
        return  # withdrawn already (a repeat), or closed there first
    api.call(
        "POST",
        f"/api/v1/referrals/{referral.remote_referral_id}/status",
        json={"status": "withdrawn"},
        headers={"If-Match": f'"{current["version"]}"'},
    )


def _withdraw_consent(erase):
    def withdraw(api, referral, peer):
        try:
            api.call(
                "POST",
                f"/api/v1/referrals/{referral.remote_referral_id}/consent/withdraw",
                json={"erase": erase},
            )
        except remote.PeerUnreachable as exc:
            if exc.status_code != 409:  # 409: withdrawn (or erased) there already, a repeat
                raise

    return withdraw


ACTIONS = {
    "create": _send,
    "withdraw": _withdraw,
    "consent_withdraw": _withdraw_consent(False),
    "erase": _withdraw_consent(True),
}


def _referrer(referral):
    user_id = referral.created_by.removeprefix("user:")
    user = db.session.get(User, user_id) if referral.created_by.startswith("user:") else None
    return {
        "caseworker": (user.name or None) if user else None,
        "organization": db.session.get(Organization, referral.sender_organization_id).name,
    }


def forwarded_body(referral):
    """What the peer receives: the categories the consent lets the receiver see, the consent
    record (not the sender's own justification), and who referred. Nothing else."""
    categories = visibility.visible_categories(visibility.RECEIVER, referral)
    subject = {
        "sex": referral.subject_sex,
        "province": referral.subject_province,
        **{
            c: crypto.decrypt(getattr(referral, f"{c}_data"), f"{referral.id}:{c}")
            for c in categories
        },
    }
    for field in ("birth_year", "age", "district"):
        if getattr(referral, f"subject_{field}") is not None:
            subject[field] = getattr(referral, f"subject_{field}")
    body = {
        "service_id": referral.service_id,
        "urgency": referral.urgency,
        "needs": referral.needs,
        "subject": subject,
        "consent": {
            "given_by": referral.consent_given_by,
            "method": referral.consent_method,
            "obtained_at": referral.consent_obtained_at.isoformat(),
            "categories": referral.consent_categories,
            "share_identity_with_government": referral.consent_share_identity_with_government,
            "expires_at": _iso(referral.consent_expires_at),
        },
        "referrer": {k: v for k, v in _referrer(referral).items() if v},
    }
    if referral.eligibility_override_data and visibility.consent_in_force(referral):
        reason = crypto.decrypt(referral.eligibility_override_data, f"{referral.id}:override")
        body["eligibility_override"] = {"reason": reason}
    if referral.consent_justification_data:
        # best_interests needs one at the peer too; the peer's receiver sees no justification
        body["consent"]["justification"] = crypto.decrypt(
            referral.consent_justification_data, f"{referral.id}:justification"
        )
    return body


def _iso(moment):
    return moment.isoformat() if moment else None


# Bringing the peer's answers back


def refresh(api, referral, peer):
    """Mirror the peer's new steps of the referral on this hub's copy, in the peer's order.
    The steps are read first: the referral read after them is at least as new as the last."""
    steps, _ = api.call("GET", f"/api/v1/referrals/{referral.remote_referral_id}/events")
    current, _ = api.call("GET", f"/api/v1/referrals/{referral.remote_referral_id}")
    new = steps["items"][referral.remote_events_seen :]
    mirrored = False
    for step in new:
        status = step.get("to_status")
        if step.get("type") != "referral.status_changed" or status == referral.status:
            continue
        if status == "withdrawn":
            continue  # this hub's sender withdrew it; the peer only confirms
        mirrored = True
        referrals.record_peer_change(
            referral,
            status,
            f"peer:{peer.id}",
            reason=step.get("reason"),
            outcome=step.get("outcome"),
            suggested_service_id=current.get("suggested_service_id"),
        )
    if mirrored:
        referral.remote_events_seen += len(new)
        referrals.save()  # another process mirroring the same steps meanwhile wins: 412
    elif new:
        _count_seen(referral, len(new))


def _count_seen(referral, count):
    """Count the peer's steps that change nothing here without making a new version: the
    version is what a caseworker's next change names, and bookkeeping must not make it stale.
    Another process counting the same steps meanwhile wins, as with save(): 412."""
    counted = db.session.execute(
        update(Referral)
        .where(
            Referral.id == referral.id,
            Referral.remote_events_seen == referral.remote_events_seen,
        )
        .values(remote_events_seen=referral.remote_events_seen + count)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not counted:
        db.session.rollback()
        raise referrals.PreconditionFailed("Another process counted the peer's steps first.")


def forwarder(app):
    """A background thread that forwards right after a commit enqueues, and polls otherwise
    (for retries, and for forwards enqueued by other processes)."""
    return WokenLoop(
        app,
        "forwarder",
        forward_due,
        app.config["CALLBACK_POLL_SECONDS"],
        "forwarding pass failed; its leases will expire",
    )
