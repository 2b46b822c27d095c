"""Slow down, then refuse, repeated failed sign-ins and token requests for one account or client."""

import time
from datetime import timedelta

from flask import current_app

from .. import clock
from ..errors import TooManyRequests
from ..extensions import db
from .models import LoginThrottle


def check(key):
    """Refuse while the key is locked; wait a little longer after each recent failure."""
    row = db.session.get(LoginThrottle, key)
    if row is None:
        return
    config = current_app.config
    moment = clock.now()
    if row.locked_until and row.locked_until > moment:
        retry_after = (row.locked_until - moment).total_seconds()
        raise TooManyRequests(
            "Too many failed attempts; try again later.", retry_after=retry_after + 1
        )
    extra_failures = row.failures - config["THROTTLE_SLOW_AFTER"] + 1
    if extra_failures > 0:
        time.sleep(min(config["THROTTLE_DELAY_SECONDS"] * extra_failures, 5))


def record_failure(key):
    config = current_app.config
    moment = clock.now()
    window = timedelta(seconds=config["THROTTLE_WINDOW_SECONDS"])
    row = db.session.get(LoginThrottle, key)
    if row is None or row.first_failure_at < moment - window:
        row = db.session.merge(
            LoginThrottle(key=key, failures=0, first_failure_at=moment, locked_until=None)
        )
    row.failures += 1
    if row.failures >= config["THROTTLE_MAX_FAILURES"]:
        row.locked_until = moment + window
    db.session.commit()


def record_success(key):
    db.session.execute(db.delete(LoginThrottle).where(LoginThrottle.key == key))
    db.session.commit()
