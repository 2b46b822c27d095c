"""The federation outbox: a step of a referral to carry to its peer hub, written in the same
transaction as the change (federation.forwarding carries it)."""

from datetime import timedelta

from .. import clock
from ..callbacks import outbox as callbacks_outbox
from ..extensions import db
from .models import Forward

FLAG_AFTER = timedelta(hours=24)


def carried(referral):
    """Whether the referral is at a peer hub, or on its way: its later steps follow it there."""
    return referral.forwarding in ("pending", "forwarded")


def enqueue(referral, action):
    """Carry this step to the peer after the referral's change commits."""
    db.session.add(
        Forward(
            referral_id=referral.id,
            peer_id=referral.peer_id,
            action=action,
            next_attempt_at=clock.now(),
        )
    )
    # The dispatcher's wake (after the commit here, NOTIFY elsewhere) wakes the forwarder too.
    callbacks_outbox.announce()


def flagged(referral):
    """Not forwarded after a day (or refused): the sender may withdraw it or send it elsewhere."""
    if referral.forwarding == "refused":
        return True
    return referral.forwarding == "pending" and clock.now() - referral.created_at >= FLAG_AFTER
