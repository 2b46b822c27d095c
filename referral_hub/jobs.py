"""The scheduler's periodic jobs, declared in one place."""

import logging

from flask import current_app

from . import clock
from .auth import throttle
from .auth.models import AuthorizationCode, RefreshToken, UsedAssertion
from .auth.revocation import purge_expired as purge_revocations
from .directory import service as directory_service
from .extensions import db, scheduler
from .federation import sync as federation_sync
from .notifications import service as notifications
from .notifications import telegram
from .referrals import drafts as referral_drafts
from .referrals import service as referral_service

log = logging.getLogger(__name__)


def purge_expired_credentials():
    """Drop codes, refresh tokens, assertions, deny-list rows and sign-in throttle counts that can
    no longer be used."""
    moment = clock.now()
    for model in (AuthorizationCode, RefreshToken, UsedAssertion):
        db.session.execute(db.delete(model).where(model.expires_at < moment))
    throttle.purge()
    purge_revocations()
    db.session.commit()


def remind_unverified_services():
    """Tell coordinators which services nobody has verified for too long."""
    directory_service.remind_unverified(current_app.config["VERIFICATION_MAX_AGE_DAYS"])
    db.session.commit()


def referral_deadlines():
    """Remind receivers half-way to a deadline, flag and escalate overdue referrals, expire the
    long unanswered, end expired consents."""
    notifications.remind_half_deadlines()
    referral_service.flag_overdue()
    referral_service.expire_unanswered()
    referral_service.expire_consents()
    db.session.commit()


def purge_expired_drafts():
    """Delete referral drafts started more than 30 days ago."""
    referral_drafts.purge_expired_drafts()
    db.session.commit()


def sync_peers():
    """Pull the directories of peer hubs whose sync is due."""
    federation_sync.sync_due()


def wake_dispatcher():
    """Deliveries due for a retry, or enqueued by another process, go out on this beat too."""
    current_app.extensions["hub_dispatcher"].wake()


def link_telegram_chats():
    """Link the Telegram chats that sent the bot a one-time code."""
    if current_app.config["TELEGRAM_BOT_TOKEN"]:
        telegram.link_new_chats()
        db.session.commit()


JOBS = [
    # (function, trigger arguments)
    (purge_expired_credentials, {"trigger": "interval", "minutes": 15}),
    (remind_unverified_services, {"trigger": "cron", "hour": 2}),
    (referral_deadlines, {"trigger": "interval", "minutes": 5}),
    (purge_expired_drafts, {"trigger": "interval", "hours": 1}),
    (wake_dispatcher, {"trigger": "interval", "seconds": 5}),
    (sync_peers, {"trigger": "interval", "minutes": 1}),
    (link_telegram_chats, {"trigger": "interval", "seconds": 10}),
]


def start(app):
    """Run the jobs, the callback dispatcher, the forwarder, the notifier and the audit
    sequencer in this process, each inside an app context."""
    for name in ("hub_dispatcher", "hub_forwarder", "hub_notifier", "hub_sequencer"):
        app.extensions[name].start()

    def in_app_context(job):
        def run():
            with app.app_context():
                try:
                    job()
                except Exception:
                    log.exception("job %s failed", job.__name__)
                    db.session.rollback()

        return run

    for job, trigger in JOBS:
        scheduler.add_job(in_app_context(job), id=job.__name__, replace_existing=True, **trigger)
    if not scheduler.running:
        scheduler.start()
