"""Slow down, then refuse, repeated failed sign-ins and token requests.

Each attempt is counted three times, in three rows of login_throttles, over the same window:
- "addr:<source>": every failure from one source address, whatever account it names, since
  password spraying tries a new account each time;
- "<kind>:<account>|<source>": one account from one address, slowed and then locked soon,
  so whoever guesses does not lock the owner out of their own address;
- "<kind>:<account>": one account from every address, locked only at a much higher count,
  against guessing spread over many addresses.
"""

import ipaddress
import time
from datetime import timedelta
from typing import NamedTuple

from flask import current_app
from sqlalchemy.exc import IntegrityError

from .. import clock
from ..errors import TooManyRequests
from ..extensions import db
from .models import LoginThrottle

ACCOUNT_LENGTH = 200  # of the key's 300 characters, so the source always fits after it


class Count(NamedTuple):
    key: str
    limit: int  # failures in the window that lock it
    slowed: bool  # each failure past THROTTLE_SLOW_AFTER makes the next attempt wait


def source(address):
    """The source address a failure counts against; one IPv6 client holds a whole /64."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return "unknown"
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped if ip.version == 6 else ip)


def _counts(kind, account, address):
    """The counts one attempt makes: by source address and, when it names one, by account."""
    config = current_app.config
    origin = source(address)
    counts = [Count(f"addr:{origin}", config["THROTTLE_ADDRESS_MAX_FAILURES"], False)]
    if account:
        account = account[:ACCOUNT_LENGTH]
        counts += [
            Count(f"{kind}:{account}|{origin}", config["THROTTLE_MAX_FAILURES"], True),
            Count(f"{kind}:{account}", config["THROTTLE_ACCOUNT_MAX_FAILURES"], False),
        ]
    return counts


def check(kind, account, address):
    """Refuse while any count of this attempt is locked, before any secret is hashed; wait a
    little longer after each recent failure of this account from this address."""
    counts = {count.key: count for count in _counts(kind, account, address)}
    rows = db.session.scalars(db.select(LoginThrottle).where(LoginThrottle.key.in_(counts))).all()
    moment = clock.now()
    locks = [row.locked_until for row in rows if row.locked_until and row.locked_until > moment]
    if locks:
        retry_after = (max(locks) - moment).total_seconds()
        raise TooManyRequests(
            "Too many failed attempts; try again later.", retry_after=retry_after + 1
        )
    config = current_app.config
    for row in rows:
        extra_failures = row.failures - config["THROTTLE_SLOW_AFTER"] + 1
        recent = row.first_failure_at > moment - _window()
        if counts[row.key].slowed and recent and extra_failures > 0:
            time.sleep(min(config["THROTTLE_DELAY_SECONDS"] * extra_failures, 5))


def record_failure(kind, account, address):
    """Count a failure in every count of the attempt; lock each that reaches its limit."""
    moment = clock.now()
    for count in _counts(kind, account, address):
        _count_failure(count.key, moment)
        db.session.execute(
            db.update(LoginThrottle)
            .where(
                LoginThrottle.key == count.key,
                LoginThrottle.failures >= count.limit,
                LoginThrottle.locked_until.is_(None),
            )
            .values(locked_until=moment + _window())
            .execution_options(synchronize_session=False)
        )
    db.session.commit()


def record_success(kind, account, address):
    """The owner got in from this address: the account's count there starts again (the counts
    by address and by account do not, or one good sign-in would hide a spray)."""
    slowed = [count.key for count in _counts(kind, account, address) if count.slowed]
    db.session.execute(db.delete(LoginThrottle).where(LoginThrottle.key.in_(slowed)))
    db.session.commit()


def purge():
    """Drop the counts whose window and lock are both over: they no longer hold anything back."""
    db.session.execute(db.delete(LoginThrottle).where(*_over(clock.now())))


def _window():
    return timedelta(seconds=current_app.config["THROTTLE_WINDOW_SECONDS"])


def _over(moment):
    """The counts whose window and lock are both over at this moment."""
    return (
        LoginThrottle.first_failure_at <= moment - _window(),
        (LoginThrottle.locked_until.is_(None)) | (LoginThrottle.locked_until <= moment),
    )


def _count_failure(key, moment):
    """Add one failure to a count in single statements, as concurrent failures do too; a count
    whose window is over starts again from this failure."""
    row = LoginThrottle.key == key
    db.session.execute(
        db.update(LoginThrottle)
        .where(row, *_over(moment))
        .values(failures=0, first_failure_at=moment, locked_until=None)
        .execution_options(synchronize_session=False)
    )
    add_one = (
        db.update(LoginThrottle)
        .where(row)
        .values(failures=LoginThrottle.failures + 1)
        .execution_options(synchronize_session=False)
    )
    if db.session.execute(add_one).rowcount:
        return
    try:
        with db.session.begin_nested():
            db.session.add(LoginThrottle(key=key, failures=1, first_failure_at=moment))
    except IntegrityError:
        db.session.execute(add_one)  # made by a concurrent failure
