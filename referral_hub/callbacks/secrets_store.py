"""Subscription secrets kept encrypted at rest, like personal data."""

from .. import clock, crypto


def seal(subscription_id, purpose, secret):
    return crypto.encrypt(secret, f"subscription:{subscription_id}:{purpose}")


def unseal(subscription_id, purpose, envelope):
    return crypto.decrypt(envelope, f"subscription:{subscription_id}:{purpose}")


def secrets_in_force(subscription):
    """The current signing secret, and the previous one while a rotation's overlap lasts."""
    found = [unseal(subscription.id, "signing", subscription.secret_data)]
    if subscription.previous_secret_data and subscription.previous_secret_until > clock.now():
        found.append(unseal(subscription.id, "signing", subscription.previous_secret_data))
    return found
