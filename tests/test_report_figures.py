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
    wrong = {
        (day, day - timedelta(days=1)): "The first day is after the last day.",
        (ten_years - timedelta(days=1), day): "Choose a period of at most ten years.",
    }
    for (first, last), message in wrong.items():
        with pytest.raises(InvalidInput) as raised:
            reports.period(first, last, ZONE)
        assert raised.value.detail == message
        assert raised.value.errors == [{"field": "from", "message": message}]


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


# 10 January 2026, 09:00 in Phnom Penh.
JANUARY = datetime(2026, 1, 10, 2, tzinfo=UTC)
# 28 February 2026, 23:00 in Phnom Penh; an hour later, 1 March there.
LATE_FEBRUARY = datetime(2026, 2, 28, 16, tzinfo=UTC)


def _answered(client, parties, referral, sent_at, steps):
    """Move the referral through (hours after sending, status) steps, each at its moment."""
    for hours, status in steps:
        clock.freeze(sent_at + timedelta(hours=hours))
        outcome = {"outcome": "service_provided"} if status == "completed" else {}
        response = move(client, parties["receiver"], referral, status, **outcome)
        assert response.status_code == 200, response.get_json()
        referral = response.get_json()


def _quarter(app, client, frozen):
    """Three referrals in January (one completed, one accepted, one only received), one on the
    last evening of February (received after an hour), one in the first hour of March."""
    parties = network(app, client)
    service = make_service(
        parties["service"].organization, categories=["detox", "medical"], areas=["17", "18"]
    )
    sent = {}
    for name, moment, needs, province in (
        ("completed", JANUARY, ["detox", "medical"], "17"),
        ("accepted", JANUARY, ["detox", "medical"], "18"),
        ("received", JANUARY, ["detox"], "17"),
        ("february", LATE_FEBRUARY, ["detox"], "17"),
        ("march", LATE_FEBRUARY + timedelta(hours=1), ["detox"], "17"),
    ):
        frozen(moment)
        sent[name] = (
            _sent(client, parties["sender"], service, needs=needs, subject__province=province),
            moment,
        )
    hour = 1
    for name, steps in (
        ("completed", [(2, "received"), (10, "accepted"), (11, "in_progress"), (12, "completed")]),
        ("accepted", [(4, "received"), (30, "accepted")]),
        ("received", [(24 + 20 / 60, "received")]),
        ("february", [(hour, "received")]),
    ):
        referral, moment = sent[name]
        _answered(client, parties, referral, moment, steps)
    frozen(datetime(2026, 4, 2, tzinfo=UTC))
    return reports.summary(_coordinator(), date(2026, 1, 1), date(2026, 3, 31), ZONE)


def _month(month, sent, accepted, completed, receive=(None, None), accept=(None, None)):
    return {
        "month": month,
        "sent": sent,
        "accepted": accepted,
        "completed": completed,
        "median_hours_to_receive": receive[0],
        "p90_hours_to_receive": receive[1],
        "median_hours_to_accept": accept[0],
        "p90_hours_to_accept": accept[1],
    }


def test_each_month_of_sending_has_its_counts_medians_and_90th_percentiles(app, client, frozen):
    """January's receipts after 2, 4 and 24 h 20 min: median 4, 90th percentile 4 + 0.8 *
    20.33 = 20.27; acceptances after 10 and 30 h: median 20, 90th 10 + 0.9 * 20 = 28. The
    month follows Phnom Penh's calendar: 23:00 on 28 February is February's, midnight March's."""
    figures = _quarter(app, client, frozen)
    assert figures["by_month"] == [
        _month("2026-01", 3, 2, 1, receive=(4.0, 20.27), accept=(20.0, 28.0)),
        _month("2026-02", 1, 0, 0, receive=(1.0, 1.0)),
        _month("2026-03", 1, 0, 0),
    ]
    # Over the quarter: receipts after 1, 2, 4 and 24.33 h.
    assert (figures["median_hours_to_receive"], figures["p90_hours_to_receive"]) == (3.0, 18.23)
    assert (figures["median_hours_to_accept"], figures["p90_hours_to_accept"]) == (20.0, 28.0)


def test_needs_by_province_count_each_pair_largest_first_then_by_code(app, client, frozen):
    figures = _quarter(app, client, frozen)
    assert figures["by_category_and_province"] == [
        {"category": "detox", "province": "17", "count": 4},
        {"category": "detox", "province": "18", "count": 1},
        {"category": "medical", "province": "17", "count": 1},
        {"category": "medical", "province": "18", "count": 1},
    ]


def test_every_month_the_period_touches_is_listed_even_without_referrals(frozen):
    frozen(JANUARY)
    figures = reports.summary(_coordinator(), date(2025, 11, 30), date(2026, 1, 1), ZONE)
    assert [month["month"] for month in figures["by_month"]] == ["2025-11", "2025-12", "2026-01"]
    assert figures["by_month"][0] == _month("2025-11", 0, 0, 0)
    assert (figures["p90_hours_to_receive"], figures["by_reach"]) == (None, [])
    assert figures["by_category_and_province"] == []


def test_a_monthly_report_covers_whole_months_by_default_the_last_one():
    assert reports.month_days(None, date(2026, 1, 1)) == (date(2025, 12, 1), date(2025, 12, 31))
    assert reports.month_days(None, date(2026, 3, 31)) == (date(2026, 2, 1), date(2026, 2, 28))
    assert reports.month_days("2024-02", None) == (date(2024, 2, 1), date(2024, 2, 29))
    assert reports.month_days("2026-03", None, 6) == (date(2025, 10, 1), date(2026, 3, 31))
    assert reports.month_days("2026-12", None, 12) == (date(2026, 1, 1), date(2026, 12, 31))
    for wrong in ("2026-13", "2026", "March", "9999-12", "0001-03"):
        with pytest.raises(InvalidInput) as raised:
            reports.month_days(wrong, None, 6)
        message = "Choose a month as year-month, for example 2026-03."
        assert raised.value.detail == message
        assert raised.value.errors == [{"field": "month", "message": message}]


def test_a_percentile_of_one_answer_is_that_answer_and_of_none_is_none():
    assert reports._percentile_90([5.0]) == 5.0
    assert reports._percentile_90([]) is None
    assert reports._percentile_90([1.0, 2.0]) == 1.9
    assert reports._percentile_90([3.0, 1.0, 2.0, 10.0, 4.0]) == 7.6


def test_reasons_are_given_to_a_focal_point_only_not_to_one_who_is_also_coordinator(frozen):
    frozen(JANUARY)
    day = date(2026, 1, 10)
    for roles, reach in (
        (
            ["focal_point"],
            [{"code": "child_province", "count": 0}, {"code": "service_province", "count": 0}],
        ),
        (["focal_point", "coordinator"], []),
    ):
        reader = principal_of(make_user(make_org(), roles=roles, provinces=["17"]))
        assert reports.summary(reader, day, day, ZONE)["by_reach"] == reach


def test_needs_of_children_of_no_known_province_come_before_each_province(app, client):
    parties = network(app, client)
    service = make_service(make_org(), categories=["detox"], areas=["17"])
    for _ in range(2):
        _sent(client, parties["sender"], service, needs=["detox"])
    db.session.scalars(db.select(Referral)).first().subject_province = None  # the column allows it
    db.session.commit()
    assert reports.summary(_coordinator(), zone=ZONE)["by_category_and_province"] == [
        {"category": "detox", "province": None, "count": 1},
        {"category": "detox", "province": "17", "count": 1},
    ]
