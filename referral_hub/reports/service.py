"""Network figures for coordinators and focal points: counts and times, never a person.

Every figure is over the referrals the principal may know exist (visibility.known_to: the
whole network for coordinators, a focal point's provinces and own organisation) sent within
the period. Only codes, organisation names and numbers come out.
"""

import statistics
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import desc, func, select, true

from .. import clock
from ..directory.models import Organization
from ..errors import InvalidInput
from ..extensions import db
from ..federation.models import Peer
from ..referrals import visibility
from ..referrals.models import STATUSES, Referral, ReferralEvent

DEFAULT_DAYS = 90
MAX_DAYS = 3653  # ten years
READERS = ("focal_point", "coordinator")


def period(first, last, zone):
    """The days first..last (inclusive, in the zone) as (first, last, start, end) with UTC
    moments start <= t < end; by default the last 90 days up to today."""
    tz = ZoneInfo(zone)
    last = last or clock.now().astimezone(tz).date()
    first = first or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        message = "The first day is after the last day."
        raise InvalidInput(message, errors=[{"field": "from", "message": message}])
    if (last - first).days > MAX_DAYS:
        message = "Choose a period of at most ten years."
        raise InvalidInput(message, errors=[{"field": "from", "message": message}])
    start = datetime.combine(first, time(), tz).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(), tz).astimezone(UTC)
    return first, last, start, end


def _counts(column, where):
    rows = db.session.execute(
        select(column, func.count())
        .where(*where)
        .group_by(column)
        .order_by(desc(func.count()), column)
    ).all()
    return [{"code": code, "count": count} for code, count in rows]


def _by_status(where):
    found = {row["code"]: row["count"] for row in _counts(Referral.status, where)}
    return [{"code": status, "count": found.get(status, 0)} for status in STATUSES]


def _needs_table():
    """The referral's needs (a JSON list) as a table of one `value` column, per database."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.json_array_elements_text(Referral.needs).table_valued("value")
    return func.json_each(Referral.needs).table_valued("value")


def _by_category(where):
    need = _needs_table()
    rows = db.session.execute(
        select(need.c.value, func.count())
        .select_from(Referral)
        .join(need, true())
        .where(*where)
        .group_by(need.c.value)
        .order_by(desc(func.count()), need.c.value)
    ).all()
    return [{"code": code, "count": count} for code, count in rows]


def _by_organization(column, where):
    rows = db.session.execute(
        select(Organization.id, Organization.name, func.count(Referral.id))
        .join(Organization, Organization.id == column)
        .where(*where)
        .group_by(Organization.id, Organization.name)
        .order_by(desc(func.count(Referral.id)), Organization.name)
    ).all()
    return [{"id": id_, "name": name, "count": count} for id_, name, count in rows]


def _median_hours(to_status, where):
    """Median hours from sending to the first move to `to_status`, of those that got there."""
    first = (
        select(ReferralEvent.referral_id, func.min(ReferralEvent.at).label("at"))
        .where(ReferralEvent.to_status == to_status, ReferralEvent.from_status != to_status)
        .group_by(ReferralEvent.referral_id)
        .subquery()
    )
    rows = db.session.execute(
        select(Referral.created_at, first.c.at)
        .join(first, first.c.referral_id == Referral.id)
        .where(*where)
    ).all()
    hours = [(reached - sent).total_seconds() / 3600 for sent, reached in rows]
    return round(statistics.median(hours), 2) if hours else None


def _by_peer_hub(where):
    """The flows between this hub and each peer hub: referrals forwarded there (this hub's
    senders) and received from there (its receivers here), of those the principal may know."""
    flows = {}
    for direction, condition in (
        ("sent", Referral.forwarding.is_not(None)),
        ("received", Referral.referrer.is_not(None)),
    ):
        rows = db.session.execute(
            select(Peer.id, Peer.name, func.count(Referral.id))
            .join(Peer, Peer.id == Referral.peer_id)
            .where(*where, condition)
            .group_by(Peer.id, Peer.name)
        ).all()
        for peer_id, name, count in rows:
            flows.setdefault(peer_id, {"id": peer_id, "name": name, "sent": 0, "received": 0})
            flows[peer_id][direction] = count
    return sorted(flows.values(), key=lambda flow: (flow["name"], flow["id"]))


def _count(where, *conditions):
    return db.session.scalar(select(func.count(Referral.id)).where(*where, *conditions))


def summary(principal, first=None, last=None, zone="Asia/Phnom_Penh"):
    """The figures of the referrals sent in the period that the principal may know of."""
    principal.require_role(*READERS)
    first, last, start, end = period(first, last, zone)
    where = (
        visibility.known_to(principal),
        Referral.created_at >= start,
        Referral.created_at < end,
    )
    return {
        "first": first,
        "last": last,
        "total": _count(where),
        "by_status": _by_status(where),
        "by_category": _by_category(where),
        "by_province": _counts(Referral.subject_province, where),
        "by_receiving_organization": _by_organization(Referral.receiver_organization_id, where),
        "by_sending_organization": _by_organization(Referral.sender_organization_id, where),
        "median_hours_to_receive": _median_hours("received", where),
        "median_hours_to_accept": _median_hours("accepted", where),
        "overdue": _count(where, visibility.overdue_condition()),
        "escalated": _count(where, Referral.escalated_at.is_not(None)),
        "by_peer_hub": _by_peer_hub(where),
    }
