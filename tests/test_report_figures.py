"""Report figures at their edges: the period's days in the reader's zone, the order of every
table, the zeros, and the medians to the hundredth of an hour."""

from datetime import UTC, date, datetime, timedelta

import pytest

from referral_hub import clock
from referral_hub.errors import InvalidInput
from referral_hub.extensions import db
from referral_hub.referrals import service as referral_service
from referral_hub.referrals.models import STATUSES, Referral
from referral_hub.reports import service as reports
from referral_hub.web.session import principal_of

from .factories import make_org, make_service, make_user
from .referral_fixtures import move, network, referral_body, send, user_party

ZONE = "Asia/Phnom_Penh"  # UTC+7 all year
# 1 March 2026, 20:00 UTC is already 2 March, 03:00 in Phnom Penh.
EVENING_UTC = datetime(2026, 3, 1, 20, tzinfo=UTC)
MIDNIGHT_2_MARCH = datetime(2026, 3, 1, 17, tzinfo=UTC)  # 00:00 on 2 March in Phnom Penh
MIDNIGHT_3_MARCH = datetime(2026, 3, 2, 17, tzinfo=UTC)


@pytest.fixture
def frozen():
    """Let a test pin the clock, and always let it run again afterwards."""
    yield clock.freeze
    clock.freeze(None)


def _coordinator():
    return principal_of(make_user(make_org(), roles=["coordinator"]))


def _sent(client, sender, service, **changes):
    response = send(client, sender, referral_body(service.id, **changes))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_the_default_period_is_the_last_ninety_days_of_the_zone_up_to_its_today(frozen):
    frozen(EVENING_UTC)
    first, last, start, end = reports.period(None, None, ZONE)
    assert (first, last) == (date(2025, 12, 3), date(2026, 3, 2))
    assert (last - first).days + 1 == reports.DEFAULT_DAYS
    assert start == datetime(2025, 12, 2, 17, tzinfo=UTC)
    assert end == MIDNIGHT_3_MARCH
    assert reports.period(None, None, "UTC")[1] == date(2026, 3, 1)


def test_a_period_is_one_day_to_ten_years():
    day = date(2026, 3, 2)
    assert reports.period(day, day, ZONE) == (day, day, MIDNIGHT_2_MARCH, MIDNIGHT_3_MARCH)
    ten_years = day - timedelta(days=reports.MAX_DAYS)
    assert reports.period(ten_years, day, ZONE)[0] == ten_years
    for first, last in ((day, day - timedelta(days=1)), (ten_years - timedelta(days=1), day)):
        with pytest.raises(InvalidInput):
            reports.period(first, last, ZONE)


def test_a_wrong_period_is_a_problem_naming_the_from_field(app, client):
    coordinator = user_party(app, ["coordinator"], scopes="reports:read")
    for query in ("from=2026-03-02&to=2026-03-01", "from=2016-02-28&to=2026-03-02"):
        response = client.get(f"/api/v1/reports/summary?{query}", headers=coordinator.headers)
        assert response.status_code == 422
        assert response.mimetype == "application/problem+json"
        problem = response.get_json()
        assert [error["field"] for error in problem["errors"]] == ["from"]
        assert problem["errors"][0]["message"] == problem["detail"] != problem["title"]


def test_a_day_runs_from_midnight_to_midnight_in_the_readers_zone(app, client, frozen):
    """Sent at 00:00 on 2 March and at 00:00 on 3 March (Phnom Penh): the day 2 March holds
    the first only; in UTC the first falls on 1 March. The second, overdue and escalated, is
    outside the day and counts in none of its figures."""
    parties = network(app, client)
    frozen(MIDNIGHT_2_MARCH)
    _sent(client, parties["sender"], parties["service"], urgency="normal")
    frozen(MIDNIGHT_3_MARCH)
    late = _sent(client, parties["sender"], parties["service"])
    db.session.execute(
        db.update(Referral).where(Referral.id == late["id"]).values(deadline_at=clock.now())
    )
    assert referral_service.flag_overdue() == 1
    db.session.commit()
    coordinator = _coordinator()
    day = date(2026, 3, 2)
    figures = reports.summary(coordinator, day, day, ZONE)
    assert (figures["total"], figures["overdue"], figures["escalated"]) == (1, 0, 0)
    assert reports.summary(coordinator, date(2026, 3, 1), date(2026, 3, 1), "UTC")["total"] == 1
    assert reports.summary(coordinator, date(2026, 3, 1), date(2026, 3, 1), ZONE)["total"] == 0
    assert reports.summary(coordinator, day, date(2026, 3, 3), ZONE)["overdue"] == 1


def test_tables_run_from_the_largest_count_then_by_name_or_code(app, client):
    parties = network(app, client)
    sender = parties["sender"]
    zulu = make_service(make_org("Zulu Test House"), areas=["17"])
    # Two organisations named against the order of their ids, so only the name orders them.
    low, high = sorted((make_org(), make_org()), key=lambda organization: organization.id)
    low.name, high.name = "Beta Test House", "Alpha Test House"
    db.session.commit()
    alpha = make_service(high, areas=["12", "17"])
    beta = make_service(low, areas=["12", "17"])
    _sent(client, sender, zulu, needs=["medical", "detox"])
    _sent(client, sender, zulu, needs=["medical"])
    _sent(client, sender, alpha, needs=["legal_aid"], subject__province="12")
    _sent(client, sender, beta, needs=["education"])
    figures = reports.summary(_coordinator(), zone=ZONE)
    assert [(row["name"], row["count"]) for row in figures["by_receiving_organization"]] == [
        ("Zulu Test House", 2),
        ("Alpha Test House", 1),
        ("Beta Test House", 1),
    ]
    assert [row["count"] for row in figures["by_sending_organization"]] == [4]
    assert figures["by_province"] == [{"code": "17", "count": 3}, {"code": "12", "count": 1}]
    assert figures["by_category"] == [
        {"code": "medical", "count": 2},
        {"code": "detox", "count": 1},
        {"code": "education", "count": 1},
        {"code": "legal_aid", "count": 1},
    ]
    assert figures["by_status"] == [
        {"code": status, "count": 4 if status == "sent" else 0} for status in STATUSES
    ]


def test_provinces_with_equal_counts_come_in_code_order(app, client):
    """The same figures in the same order on every run and every database (PostgreSQL's hash
    grouping has no order of its own)."""
    parties = network(app, client)
    service = make_service(make_org(), areas=["12", "17", "02"])
    for province in ("17", "02", "12"):
        _sent(client, parties["sender"], service, subject__province=province)
    figures = reports.summary(_coordinator(), zone=ZONE)
    assert [row["code"] for row in figures["by_province"]] == ["02", "12", "17"]


def test_a_median_pairs_each_referral_with_its_own_answer_to_the_hundredth_of_an_hour(
    app, client, frozen
):
    """Received 100 h 20 min after sending: 100.33 hours. A second referral, sent an hour
    later and never received, is no part of the median."""
    parties = network(app, client)
    start = clock.now().replace(microsecond=0) - timedelta(days=10)
    frozen(start)
    answered = _sent(client, parties["sender"], parties["service"])
    frozen(start + timedelta(hours=1))
    _sent(client, parties["sender"], parties["service"])
    frozen(start + timedelta(hours=100, minutes=20))
    assert move(client, parties["receiver"], answered, "received").status_code == 200
    frozen(None)
    figures = reports.summary(_coordinator(), zone=ZONE)
    assert figures["median_hours_to_receive"] == 100.33
    assert figures["median_hours_to_accept"] is None
