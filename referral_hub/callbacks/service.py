"""Rules for subscriptions: who registers, pauses, rotates and replays; what they see."""

from datetime import timedelta

from sqlalchemy.orm import selectinload

from .. import clock
from ..audit import service as audit
from ..auth.principal import actor
from ..db_types import new_id
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from ..extensions import db
from ..pagination import paginate
from . import outbox, secrets_store, subscribers, targets
from .models import Delivery, Subscription
from .signing import new_secret

ROTATION_OVERLAP = timedelta(hours=24)


def _may_manage(principal, organization_id):
    """An organisation's admins and systems manage its subscriptions; coordinators all of them."""
    if principal.has_role("coordinator"):
        return True
    same = principal.organization_id == organization_id
    return same and (principal.user_id is None or principal.has_role("org_admin"))


def _subscription(principal, subscription_id):
    subscription = db.session.get(Subscription, subscription_id)
    if subscription is None or not _may_manage(principal, subscription.organization_id):
        raise NotFound("No such subscription.")
    return subscription


def _check_target(field, url):
    try:
        targets.check_url(url)
    except targets.TargetRefused as exc:
        raise InvalidInput(str(exc), errors=[{"field": field, "message": str(exc)}]) from None


def _audit(principal, action, subscription, details=None):
    audit.record(
        actor(principal),
        subscription.organization_id,
        action,
        "subscription",
        subscription.id,
        details,
    )


def _require_manager(principal):
    if principal.user_id and not principal.has_role("org_admin", "coordinator"):
        raise Forbidden("Only the organisation's admins or its systems manage callbacks.")


def create_subscription(principal, url, event_types, oauth=None):
    """Register a callback URL; returns (subscription, secret) and the secret is shown once."""
    _require_manager(principal)
    _check_target("url", url)
    if oauth:
        _check_target("oauth.token_url", oauth["token_url"])
    subscription = Subscription(
        id=new_id(),
        organization_id=principal.organization_id,
        url=url,
        event_types=sorted(set(event_types)),
    )
    secret = new_secret()
    subscription.secret_data = secrets_store.seal(subscription.id, "signing", secret)
    if oauth:
        subscription.oauth_token_url = oauth["token_url"]
        subscription.oauth_client_id = oauth["client_id"]
        subscription.oauth_client_secret_data = secrets_store.seal(
            subscription.id, "oauth", oauth["client_secret"]
        )
        subscription.oauth_scope = oauth.get("scope")
    db.session.add(subscription)
    db.session.flush()
    subscribers.changed()
    _audit(principal, "subscription.created", subscription)
    return subscription, secret


def list_subscriptions(principal, page_args, status=None):
    """The organisation's subscriptions; coordinators see the network's (e.g. the disabled)."""
    _require_manager(principal)
    query = db.select(Subscription)
    if not principal.has_role("coordinator"):
        query = query.where(Subscription.organization_id == principal.organization_id)
    if status:
        query = query.where(Subscription.status == status)
    return paginate(query, Subscription.id, Subscription.id, page_args)


def get_subscription(principal, subscription_id):
    return _subscription(principal, subscription_id)


def delete_subscription(principal, subscription_id):
    subscription = _subscription(principal, subscription_id)
    _audit(principal, "subscription.deleted", subscription)
    subscribers.changed()
    db.session.delete(subscription)
    db.session.flush()


def set_paused(principal, subscription_id, paused):
    """Paused subscriptions keep their deliveries waiting; resuming sends them in order."""
    subscription = _subscription(principal, subscription_id)
    if subscription.status == "disabled" and paused:
        raise Conflict("A disabled subscription cannot be paused; resume it first.")
    subscription.status = "paused" if paused else "active"
    subscription.disabled_reason = None
    subscribers.changed()
    if not paused:
        subscription.failing_since = None
        outbox.announce()  # what waited goes out after the commit
    _audit(principal, "subscription.paused" if paused else "subscription.resumed", subscription)
    db.session.flush()
    return subscription


def rotate_secret(principal, subscription_id):
    """A new secret signs from now; the old one keeps signing too for a day, so partners switch."""
    subscription = _subscription(principal, subscription_id)
    secret = new_secret()
    subscription.previous_secret_data = subscription.secret_data
    subscription.previous_secret_until = clock.now() + ROTATION_OVERLAP
    subscription.secret_data = secrets_store.seal(subscription.id, "signing", secret)
    _audit(principal, "subscription.secret_rotated", subscription)
    db.session.flush()
    return subscription, secret


def deliveries(principal, subscription_id, page_args, status=None):
    subscription = _subscription(principal, subscription_id)
    query = (
        db.select(Delivery)
        .where(Delivery.subscription_id == subscription.id)
        .options(selectinload(Delivery.attempt_log))
    )
    if status:
        query = query.where(Delivery.status == status)
    return paginate(query, Delivery.event_id, Delivery.id, page_args)


def replay(principal, subscription_id, delivery_id=None):
    """Send failed deliveries again (one, or all of the subscription's), same webhook-id."""
    subscription = _subscription(principal, subscription_id)
    query = db.select(Delivery).where(
        Delivery.subscription_id == subscription.id, Delivery.status == "failed"
    )
    if delivery_id:
        query = query.where(Delivery.id == delivery_id)
    found = db.session.scalars(query).all()
    if delivery_id and not found:
        delivery = db.session.get(Delivery, delivery_id)
        if delivery is None or delivery.subscription_id != subscription.id:
            raise NotFound("No such delivery.")
        raise Conflict("Only a failed delivery is replayed.")
    for delivery in found:
        delivery.status, delivery.attempts, delivery.next_attempt_at = "pending", 0, clock.now()
        delivery.leased_until = None
    if found:
        outbox.announce()
    _audit(principal, "subscription.replayed", subscription, {"count": len(found)})
    db.session.flush()
    return len(found)
