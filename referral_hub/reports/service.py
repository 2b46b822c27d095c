"""Network figures for coordinators and focal points: counts and times, never a person.

Every figure is over the referrals the principal may know exist (visibility.known_to: the
whole network for coordinators; for a focal point, children from its provinces, services in
its provinces and its own organisation) sent within the period. Only codes, organisation
names and numbers come out.
"""

import statistics
from datetime import UTC, date, datetime, time, timedelta
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
MILESTONES = ("received", "accepted", "completed")


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


def month_days(month, today, months=1):
    """The first and last day of `months` months ending with `month` ("YYYY-MM"); by default
    the month before today's, the one a monthly meeting looks back on."""
    if month is None:
        before = today.replace(day=1) - timedelta(days=1)
        month = f"{before.year:04d}-{before.month:02d}"
    try:
        year, number = (int(part) for part in month.split("-"))
        last_first = date(year, number, 1)
        next_month = (last_first + timedelta(days=31)).replace(day=1)
        index = year * 12 + number - months
        first = date(index // 12, index % 12 + 1, 1)
    except (ValueError, OverflowError):
        message = "Choose a month as year-month, for example 2026-03."
        raise InvalidInput(message, errors=[{"field": "month", "message": message}]) from None
    return first, next_month - timedelta(days=1)


def _first_reached(status):
    """Each referral's first move to `status`, as (referral_id, at)."""
    return (
        select(ReferralEvent.referral_id, func.min(ReferralEvent.at).label("at"))
        .where(ReferralEvent.to_status == status, ReferralEvent.from_status != status)
        .group_by(ReferralEvent.referral_id)
        .subquery()
    )


def _milestones(where):
    """(sent, received, accepted, completed) moments of each referral; None where not reached."""
    reached = [_first_reached(status) for status in MILESTONES]
    query = select(Referral.created_at, *(moment.c.at for moment in reached))
    for moment in reached:
        query = query.outerjoin(moment, moment.c.referral_id == Referral.id)
    return db.session.execute(query.where(*where)).all()


def _hours(rows, milestone):
    """Hours from sending to the milestone, of the referrals that reached it."""
    index = 1 + MILESTONES.index(milestone)
    return [(row[index] - row[0]).total_seconds() / 3600 for row in rows if row[index]]


def _median(hours):
    return round(statistics.median(hours), 2) if hours else None


def _percentile_90(hours):
    """The 90th percentile, interpolated between the nearest ranks (as spreadsheets do)."""
    if len(hours) < 2:
        return _median(hours)
    return round(statistics.quantiles(hours, n=10, method="inclusive")[-1], 2)


def _months(first, last):
    """The months touching first..last, as "YYYY-MM"."""
    months, year, month = [], first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _by_month(rows, first, last, zone):
    """Per month of sending: how many were sent, how many of those were accepted and completed
    (by now), and the median and 90th-percentile hours to receipt and to acceptance."""
    tz = ZoneInfo(zone)
    sent_in = {month: [] for month in _months(first, last)}
    for row in rows:
        sent_in[row[0].astimezone(tz).strftime("%Y-%m")].append(row)
    trend = []
    for month, sent in sent_in.items():
        to_receive, to_accept = _hours(sent, "received"), _hours(sent, "accepted")
        trend.append(
            {
                "month": month,
                "sent": len(sent),
                "accepted": len(to_accept),
                "completed": len(_hours(sent, "completed")),
                "median_hours_to_receive": _median(to_receive),
                "p90_hours_to_receive": _percentile_90(to_receive),
                "median_hours_to_accept": _median(to_accept),
                "p90_hours_to_accept": _percentile_90(to_accept),
            }
        )
    return trend


def _by_category_and_province(where):
    """Referrals per (need, child's province), largest first, then by code."""
    need = _needs_table()
    rows = db.session.execute(
        select(need.c.value, Referral.subject_province, func.count())
        .select_from(Referral)
        .join(need, true())
        .where(*where)
        .group_by(need.c.value, Referral.subject_province)
    ).all()
    table = [
        {"category": category, "province": province, "count": count}
        for category, province, count in rows
    ]
    return sorted(table, key=lambda row: (-row["count"], row["category"], row["province"] or ""))


def _by_reach(principal, where):
    """For a focal point: how many referrals it knows of through the child's province and
    through the receiving service's province (one referral may count in both)."""
    if principal.has_role("coordinator") or not principal.has_role("focal_point"):
        return []
    conditions = visibility.reason_conditions(principal.provinces)
    return [
        {"code": reason, "count": _count(where, condition)}
        for reason, condition in conditions.items()
    ]


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
    milestones = _milestones(where)
    to_receive, to_accept = _hours(milestones, "received"), _hours(milestones, "accepted")
    return {
        "first": first,
        "last": last,
        "total": _count(where),
        "by_status": _by_status(where),
        "by_category": _by_category(where),
        "by_province": _counts(Referral.subject_province, where),
        "by_receiving_organization": _by_organization(Referral.receiver_organization_id, where),
        "by_sending_organization": _by_organization(Referral.sender_organization_id, where),
        "by_category_and_province": _by_category_and_province(where),
        "by_month": _by_month(milestones, first, last, zone),
        "by_reach": _by_reach(principal, where),
        "median_hours_to_receive": _median(to_receive),
        "p90_hours_to_receive": _percentile_90(to_receive),
        "median_hours_to_accept": _median(to_accept),
        "p90_hours_to_accept": _percentile_90(to_accept),
        "overdue": _count(where, visibility.overdue_condition()),
        "escalated": _count(where, Referral.escalated_at.is_not(None)),
        "by_peer_hub": _by_peer_hub(where),
    }
