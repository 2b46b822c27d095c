"""Who hears of what, and how: the hub's events become notifications in the change's own
transaction (an outbox, like the callbacks'), and each person's choices decide when they go."""

import hashlib
import secrets
import uuid
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context
from sqlalchemy import and_, insert, inspect, select, update
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.orm import Session, aliased

from .. import clock
from ..auth.models import Membership, User
from ..callbacks import outbox as callbacks_outbox
from ..directory.models import Organization, Service
from ..errors import InvalidInput, NotFound
from ..extensions import db
from .models import (
    CHOICES,
    KINDS,
    DeadlineReminder,
    Notification,
    NotificationAddress,
    NotificationChoice,
)

LOCAL_TIME = ZoneInfo("Asia/Phnom_Penh")
DIGEST_AT = time(7, 0)  # the morning digest, local time
LINK_CODE_MINUTES = 30
ANSWERS = ("received", "accepted", "declined", "completed", "withdrawn", "expired")
REFERRAL_KINDS = {"referral_new", "referral_answered", "deadline_half", "deadline_passed"}
REFERRAL_KINDS |= {"consent_withdrawn"}
RECEIVER_STAFF = ("caseworker", "org_admin")


def enabled():
    """Whether any channel is configured; with none, nothing is written."""
    return bool(current_app.extensions["hub_notifier"].channel_names)


def next_digest(moment):
    """The next 07:00 in Phnom Penh after `moment`, in UTC."""
    local = moment.astimezone(LOCAL_TIME)
    at = datetime.combine(local.date(), DIGEST_AT, LOCAL_TIME)
    if at <= local:
        at += timedelta(days=1)
    return at.astimezone(moment.tzinfo)


# Referral events


def reference_of(referral):
    """The referral's reference as people quote it (MLT-26-0042); its id's start for one
    that has none (a peer hub's)."""
    return referral.reference or referral.id[:8].upper()


def referral_facts(referral):
    """What a message may say of a referral: never the child's personal data, only age, sex and
    the categories of need, with the reference and a link."""
    age = referral.subject_age
    if age is None and referral.subject_birth_year:
        age = clock.now().year - referral.subject_birth_year
    service = db.session.get(Service, referral.service_id)
    sender = db.session.get(Organization, referral.sender_organization_id)
    receiver = db.session.get(Organization, referral.receiver_organization_id)
    return {
        "reference": reference_of(referral),
        "urgency": referral.urgency,
        "age": age,
        "sex": referral.subject_sex,
        "categories": list(referral.needs or []),
        "status": referral.status,
        "deadline_at": referral.deadline_at.isoformat() if referral.deadline_at else None,
        "service": service.name if service else None,
        "sender": sender.name if sender else None,
        "receiver": receiver.name if receiver else None,
        "path": f"/referrals/{referral.id}",
    }


def on_referral_event(event, referral):
    """Notify the people an event of a referral concerns; called where the event is written."""
    if not enabled():
        return
    if event.type == "referral.created":
        _remember_half_deadline(referral)
        _notify_holders(referral, "referral_new")
    elif event.type == "referral.status_changed" and event.to_status in ANSWERS:
        _notify_sender(referral, event)
    elif event.type == "referral.overdue":
        _notify_receiver_staff(referral, "deadline_passed")
    elif event.type == "referral.consent_withdrawn":
        _notify_holders(referral, "consent_withdrawn")


@sqlalchemy_event.listens_for(Session, "after_flush")
def _assignments(session, _flush_context):
    """Whoever assigns a referral, and however (page, API), its new assignee hears of it as of
    a new referral: from then on they alone hold it."""
    from ..referrals.models import Referral

    if not has_app_context():
        return
    for referral in session.dirty:
        if isinstance(referral, Referral) and referral.assigned_to_user_id:
            history = inspect(referral).attrs.assigned_to_user_id.history
            if history.added and enabled():
                facts = {**referral_facts(referral), "assigned": True}
                urgent = referral.urgency == "emergency"
                notify([referral.assigned_to_user_id], "referral_new", facts, referral.id, urgent)


def _holders(referral):
    """Who holds a referral at the receiver: its assignee once there is one, else the
    receiving organisation's caseworkers."""
    if referral.assigned_to_user_id:
        return [referral.assigned_to_user_id]
    return _staff(referral.receiver_organization_id, ("caseworker",))


def _notify_holders(referral, kind):
    notify_referral(_holders(referral), kind, referral)


def _notify_receiver_staff(referral, kind):
    notify_referral(_staff(referral.receiver_organization_id, RECEIVER_STAFF), kind, referral)


def _notify_sender(referral, event):
    """The person who sent the referral hears of its answer, unless they made the change."""
    kind, _, user_id = (referral.created_by or "").partition(":")
    if kind == "user" and event.actor != referral.created_by:
        notify_referral([user_id], "referral_answered", referral)


def _remember_half_deadline(referral):
    if referral.deadline_at is None:
        return
    half = referral.created_at + (referral.deadline_at - referral.created_at) / 2
    db.session.add(DeadlineReminder(referral_id=referral.id, remind_at=half))


def remind_half_deadlines():
    """Tell the receivers of unanswered referrals that half their time to answer is gone."""
    from ..referrals.models import UNANSWERED_STATUSES, Referral

    due = db.session.execute(
        select(DeadlineReminder, Referral)
        .join(Referral, Referral.id == DeadlineReminder.referral_id)
        .where(DeadlineReminder.done_at.is_(None), DeadlineReminder.remind_at <= clock.now())
    ).all()
    for reminder, referral in due:
        reminder.done_at = clock.now()
        if referral.status in UNANSWERED_STATUSES and not referral.overdue and enabled():
            _notify_receiver_staff(referral, "deadline_half")
    db.session.flush()
    return len(due)


def notify_referral(user_ids, kind, referral):
    urgent = referral.urgency == "emergency"
    notify(user_ids, kind, referral_facts(referral), referral.id, always_immediate=urgent)


# Other events


def _staff(organization_id, roles):
    """Ids of the organisation's active users holding any of `roles`."""
    return db.session.scalars(
        select(User.id)
        .join(Membership, Membership.user_id == User.id)
        .where(User.organization_id == organization_id, User.active, Membership.role.in_(roles))
        .distinct()
    ).all()


def service_unverified(service):
    """Tell the organisation's admins that a service of theirs needs verifying."""
    if not enabled():
        return
    verified = service.last_verified_at
    facts = {
        "service": service.name,
        "last_verified_at": verified.isoformat() if verified else None,
        "path": "/capacity",
    }
    notify(_staff(service.organization_id, ("org_admin",)), "service_unverified", facts)


def subscription_disabled(subscription, reason):
    """Tell the organisation's admins that the hub stopped one of their callbacks."""
    if not enabled():
        return
    facts = {"url": subscription.url, "reason": reason, "path": f"/callbacks/{subscription.id}"}
    admins = _staff(subscription.organization_id, ("org_admin",))
    notify(admins, "subscription_disabled", facts)


# Writing the outbox


def notify(user_ids, kind, facts, referral_id=None, always_immediate=False):
    """One notification per person and channel, by each person's choice for `kind`; written
    in the current transaction, sent once it commits. Returns how many were written."""
    if not user_ids:
        return 0
    moment = clock.now()
    channels = current_app.extensions["hub_notifier"].channel_names
    rows = []
    for person in _recipients(user_ids, kind):
        choice = "immediate" if always_immediate else person["choice"]
        if choice == "off":
            continue
        due = moment if choice == "immediate" else next_digest(moment)
        for channel in channels:
            if channel == "telegram" and not person["telegram"]:
                continue
            rows.append(
                {
                    "id": f"ntf_{uuid.uuid4().hex}",
                    "user_id": person["id"],
                    "organization_id": person["organization_id"],
                    "channel": channel,
                    "kind": kind,
                    "referral_id": referral_id,
                    "facts": facts,
                    "digest": choice == "digest",
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": due,
                    "created_at": moment,
                }
            )
    if rows:
        db.session.execute(insert(Notification), rows)
        callbacks_outbox.announce()  # wakes the worker's notifier with its dispatcher
    return len(rows)


def _recipients(user_ids, kind):
    """The active users among `user_ids`, each with their choice for `kind` (theirs, else their
    organisation's, else the hub's) and whether a Telegram chat is linked; one query."""
    own = aliased(NotificationChoice)
    default = aliased(NotificationChoice)
    telegram = aliased(NotificationAddress)
    rows = db.session.execute(
        select(User.id, User.organization_id, own.choice, default.choice, telegram.address)
        .outerjoin(own, and_(own.user_id == User.id, own.kind == kind))
        .outerjoin(
            default,
            and_(default.organization_id == User.organization_id, default.kind == kind),
        )
        .outerjoin(
            telegram,
            and_(
                telegram.user_id == User.id,
                telegram.channel == "telegram",
                telegram.address.is_not(None),
            ),
        )
        .where(User.id.in_(set(user_ids)), User.active)
    ).all()
    return [
        {
            "id": user_id,
            "organization_id": organization_id,
            "choice": mine or theirs or KINDS[kind],
            "telegram": chat is not None,
        }
        for user_id, organization_id, mine, theirs, chat in rows
    ]


# Choices


def choices(user):
    """The user's choice for each kind, with where it comes from (theirs, organisation, hub)."""
    mine = _choices_of(NotificationChoice.user_id == user.id)
    theirs = organization_defaults(user.organization_id)
    return {kind: mine.get(kind) or theirs[kind] for kind in KINDS}, mine


def organization_defaults(organization_id):
    found = _choices_of(NotificationChoice.organization_id == organization_id)
    return {kind: found.get(kind, default) for kind, default in KINDS.items()}


def _choices_of(condition):
    rows = db.session.execute(
        select(NotificationChoice.kind, NotificationChoice.choice).where(condition)
    ).all()
    return dict(rows)


def _check_choices(wanted):
    for kind, choice in wanted.items():
        if kind not in KINDS or choice not in CHOICES:
            raise InvalidInput(
                "Unknown notification choice.", errors=[{"field": kind, "message": choice}]
            )


def set_choices(user, wanted):
    """Save the user's choices; a choice equal to their organisation's default follows it."""
    _check_choices(wanted)
    defaults = organization_defaults(user.organization_id)
    for kind, choice in wanted.items():
        _save_choice({"user_id": user.id}, kind, None if choice == defaults[kind] else choice)


def set_organization_defaults(principal, wanted):
    """An organisation admin sets what its people get unless they choose otherwise."""
    principal.require_role("org_admin")
    _check_choices(wanted)
    for kind, choice in wanted.items():
        value = None if choice == KINDS[kind] else choice
        _save_choice({"organization_id": principal.organization_id}, kind, value)


def _save_choice(owner, kind, choice):
    found = db.session.scalar(select(NotificationChoice).filter_by(kind=kind, **owner))
    if choice is None:
        if found is not None:
            db.session.delete(found)
    elif found is None:
        db.session.add(NotificationChoice(kind=kind, choice=choice, **owner))
    else:
        found.choice = choice
    db.session.flush()


def set_language(user, language):
    user.language = language
    db.session.flush()


# Addresses: pausing after failures, Telegram links


def address(user_id, channel):
    return db.session.scalar(
        select(NotificationAddress).filter_by(user_id=user_id, channel=channel)
    )


def paused_channels(user):
    """The channels whose messages to this user wait after repeated failures: the banner."""
    return db.session.scalars(
        select(NotificationAddress.channel).where(
            NotificationAddress.user_id == user.id, NotificationAddress.paused_at.is_not(None)
        )
    ).all()


def resume(user, channel):
    """The user has checked their address: send again what waits, and count failures anew."""
    found = address(user.id, channel)
    if found is not None:
        found.paused_at, found.failures = None, 0
        db.session.flush()
        callbacks_outbox.announce()


def _code_hash(code):
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


def telegram_link_code(user):
    """A one-time code the user sends to the hub's bot to link their Telegram chat."""
    code = secrets.token_hex(4).upper()
    found = address(user.id, "telegram")
    if found is None:
        found = NotificationAddress(user_id=user.id, channel="telegram")
        db.session.add(found)
    found.link_code_hash = _code_hash(code)
    found.link_expires_at = clock.now() + timedelta(minutes=LINK_CODE_MINUTES)
    db.session.flush()
    return code


def link_telegram(code, chat_id):
    """Link the chat that sent a valid, unexpired code; returns the address linked, or None."""
    found = db.session.scalar(
        select(NotificationAddress).where(
            NotificationAddress.link_code_hash == _code_hash(code),
            NotificationAddress.link_expires_at > clock.now(),
        )
    )
    if found is None:
        return None
    found.address, found.link_code_hash, found.link_expires_at = str(chat_id), None, None
    found.paused_at, found.failures = None, 0
    db.session.flush()
    return found


def unlink_telegram(user):
    found = address(user.id, "telegram")
    if found is not None:
        db.session.delete(found)
        db.session.flush()


# The admin's view of messages and their attempts


def messages(principal, status=None, limit=100):
    """The latest messages to the organisation's people, newest first, with their attempts."""
    principal.require_role("org_admin")
    query = select(Notification).where(Notification.organization_id == principal.organization_id)
    if status:
        query = query.where(Notification.status == status)
    query = query.order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit)
    return db.session.scalars(query).all()


def send_again(principal, notification_id):
    """A failed message goes out again, with the same Message-ID."""
    principal.require_role("org_admin")
    done = db.session.execute(
        update(Notification)
        .where(
            Notification.id == notification_id,
            Notification.organization_id == principal.organization_id,
            Notification.status == "failed",
        )
        .values(status="pending", next_attempt_at=clock.now(), leased_until=None)
    )
    if not done.rowcount:
        raise NotFound("No such failed message.")
    callbacks_outbox.announce()
