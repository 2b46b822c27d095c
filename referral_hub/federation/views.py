"""The coordinators' page of peer hubs: state, last sync, services and referral flows."""

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from ..auth.principal import actor
from ..csrf import check_csrf
from ..extensions import db
from ..referrals.models import Referral
from ..web.error_pages import page_blueprint
from ..web.session import signed_in
from . import outbox, peering, sync

bp = page_blueprint("peer_pages", __name__, url_prefix="/network")


def _flagged_referrals():
    """Referrals to peer hubs not forwarded after a day, or refused there."""
    waiting = db.session.scalars(
        db.select(Referral)
        .where(Referral.forwarding.in_(("pending", "refused")))
        .order_by(Referral.created_at, Referral.id)
        .limit(200)
    ).all()
    return [referral for referral in waiting if outbox.flagged(referral)]


@bp.get("/peers")
@signed_in("coordinator")
def peers(principal):
    return render_template(
        "network/peers.html", peers=peering.summaries(), flagged=_flagged_referrals()
    )


@bp.post("/peers/<uuid:peer_id>/sync")
@signed_in("coordinator")
def sync_now(peer_id, principal):
    check_csrf()
    peer = peering.find(str(peer_id))
    outcome = sync.sync(peer.id)
    if outcome["ok"]:
        flash(_("Synced: the peer's changes are in the directory."), "success")
    else:
        flash(_("The sync failed; nothing was changed. See the peer's last sync."), "error")
    return redirect(url_for(".peers"))


@bp.post("/peers/<uuid:peer_id>/state")
@signed_in("coordinator")
def set_state(peer_id, principal):
    check_csrf()
    paused = request.form.get("paused") == "true"
    peering.set_status(actor(principal), str(peer_id), "paused" if paused else "active")
    db.session.commit()
    if paused:
        flash(_("Paused: nothing is synced or forwarded until you resume."), "success")
    else:
        flash(_("Resumed: waiting referrals are being forwarded."), "success")
    return redirect(url_for(".peers"))
