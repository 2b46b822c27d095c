"""The dashboard and its CSV: figures within each reader's reach, never a person."""

import csv
import io
import re
import zlib
from datetime import UTC, datetime, timedelta

from babel.dates import format_date

from referral_hub import clock
from referral_hub.directory.models import Organization
from referral_hub.extensions import db
from referral_hub.referrals import service as referral_service
from referral_hub.referrals.models import Referral
from referral_hub.reports import charts
from referral_hub.reports import service as reports
from referral_hub.web.session import principal_of

from .factories import make_org, make_service
from .pages import signed_in, text
from .referral_fixtures import PERSONAL_VALUES, move, network, referral_body, send, user_party


def _sent(client, parties, **changes):
    response = send(client, parties["sender"], referral_body(parties["service"].id, **changes))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _figure(page, figure_id):
    start = page.index(f'id="figure-{figure_id}">') + len(f'id="figure-{figure_id}">')
    return page[start : page.index("</dd>", start)]


def test_focal_point_dashboard_counts_a_referral_without_showing_a_name(app, client):
    parties = network(app, client)
    _sent(client, parties, consent__share_identity_with_government=True)
    browser, _user = signed_in(app, ["focal_point"], provinces=["17"])
    response = browser.get("/reports", headers={"Accept-Language": "en"})
    page = text(response)
    assert response.status_code == 200
    assert _figure(page, "total") == "1"
    assert "Drug and alcohol detoxification" in page and "Siem Reap" in page
    assert parties["service"].organization.name in page
    for value in PERSONAL_VALUES:
        assert value not in page
    assert "<script" not in page and len(response.data) < 100_000
    assert '<svg class="chart"' in page and "<title" in page


def test_focal_point_sees_only_their_provinces_and_the_coordinator_everything(app, client):
    parties = network(app, client)
    _sent(client, parties)
    far = make_service(make_org(province="12"), categories=["detox"], areas=["12"])
    _sent(client, {**parties, "service": far}, subject__province="12")
    inside, _ = signed_in(app, ["focal_point"], provinces=["17"])
    outside, _ = signed_in(app, ["focal_point"], provinces=["01"])
    coordinator, _ = signed_in(app, ["coordinator"])
    assert _figure(text(inside.get("/reports")), "total") == "1"
    assert _figure(text(outside.get("/reports")), "total") == "0"
    assert _figure(text(coordinator.get("/reports")), "total") == "2"


def test_other_roles_may_not_see_the_dashboard(app):
    for roles in (["caseworker"], ["org_admin"]):
        browser, _ = signed_in(app, roles)
        for path in ("/reports", "/reports/figures.csv"):
            response = browser.get(path)
            assert response.status_code == 403
            assert response.content_type.startswith("text/html")
    assert app.test_client().get("/reports").status_code == 302


def test_period_is_chosen_and_a_wrong_period_is_shown_next_to_the_field(app, client):
    parties = network(app, client)
    _sent(client, parties)
    browser, _ = signed_in(app, ["coordinator"])
    today = clock.now().date()
    before = (today - timedelta(days=30)).isoformat()
    old = browser.get(f"/reports?from={before}&to={(today - timedelta(days=10)).isoformat()}")
    assert _figure(text(old), "total") == "0"
    wrong = text(
        browser.get("/reports?from=31-12-2024&to=2025-01-01", headers={"Accept-Language": "en"})
    )
    assert 'value="31-12-2024"' in wrong and 'id="from-error"' in wrong
    reversed_ = text(browser.get(f"/reports?from={today.isoformat()}&to={before}"))
    assert 'id="from-error"' in reversed_ and 'aria-invalid="true"' in reversed_
    assert browser.get("/reports/figures.csv?from=nonsense").status_code == 422


def test_csv_has_the_same_figures_and_no_formula(app, client):
    parties = network(app, client)
    sender = db.session.get(Organization, parties["sender"].organization_id)
    sender.name = '=HYPERLINK("http://evil.example","x")'
    db.session.commit()
    _sent(client, parties)
    browser, _ = signed_in(app, ["focal_point"], provinces=["17"])
    response = browser.get("/reports/figures.csv", headers={"Accept-Language": "en"})
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith("attachment; filename=")
    body = response.get_data(as_text=True).lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(body)))
    assert ["total", "", "Referrals sent", "1"] in rows
    assert ["status", "sent", "Sent", "1"] in rows
    assert ["province", "17", "Siem Reap", "1"] in rows
    senders = [row for row in rows if row[0] == "sending_organization"]
    assert senders[0][2].startswith("'=HYPERLINK")
    for value in PERSONAL_VALUES:
        assert value not in body


def test_medians_overdue_and_escalated(app, client):
    parties = network(app, client)
    first = _sent(client, parties)
    second = _sent(client, parties, urgency="normal")
    received = move(client, parties["receiver"], first, "received").get_json()
    move(client, parties["receiver"], received, "accepted")
    db.session.execute(
        db.update(Referral)
        .where(Referral.id == second["id"])
        .values(deadline_at=clock.now() - timedelta(hours=1))
    )
    referral_service.flag_overdue()
    db.session.commit()
    coordinator, user = signed_in(app, ["coordinator"])
    figures = reports.summary(principal_of(user))
    assert figures["total"] == 2
    assert figures["overdue"] == 1 and figures["escalated"] == 1
    assert figures["median_hours_to_receive"] is not None
    assert 0 <= figures["median_hours_to_accept"] < 1
    assert {"code": "accepted", "count": 1} in figures["by_status"]
    assert figures["by_category"] == [{"code": "detox", "count": 2}]
    page = text(coordinator.get("/reports"))
    assert _figure(page, "overdue") == "1" and _figure(page, "escalated") == "1"


def test_median_times_are_medians_not_means_or_maxima(app, client):
    """Received after 1, 2, 3 and 10 hours: the median is 2.5 (mean 4, half the maximum 5);
    accepted after 2, 4 and 5 hours: 4 (mean 3.67, half the maximum 2.5)."""
    parties = network(app, client)
    start = clock.now().replace(microsecond=0) - timedelta(days=1)
    try:
        clock.freeze(start)
        referrals = [_sent(client, parties) for _ in range(4)]
        for hours, referral, accept_after in zip(
            (1, 2, 3, 10), referrals, (1, 2, 2, None), strict=True
        ):
            clock.freeze(start + timedelta(hours=hours))
            received = move(client, parties["receiver"], referral, "received").get_json()
            if accept_after is not None:
                clock.freeze(start + timedelta(hours=hours + accept_after))
                move(client, parties["receiver"], received, "accepted")
    finally:
        clock.freeze(None)
    _, user = signed_in(app, ["coordinator"])
    figures = reports.summary(principal_of(user))
    assert figures["median_hours_to_receive"] == 2.5
    assert figures["median_hours_to_accept"] == 4


def test_dashboard_speaks_khmer(app, client):
    parties = network(app, client)
    _sent(client, parties)
    browser, _ = signed_in(app, ["focal_point"], provinces=["17"])
    page = text(browser.get("/reports", headers={"Accept-Language": "km"}))
    assert "សៀមរាប" in page and '<html lang="km">' in page


def test_chart_is_plain_svg_with_escaped_labels():
    svg = str(charts.bar_chart("c", "By <org>", [("<script>x</script>", 3), ("B" * 60, 1)]))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "<title>" + "B" * 60 + ": 1</title>" in svg and "…" in svg
    assert svg.count("<rect") == 2 and 'width="80.00%"' in svg and 'width="26.67%"' in svg
    assert "viewBox" not in svg and 'width="100%"' in svg and 'font-size="16"' in svg


def test_a_grouped_chart_has_a_legend_and_a_bar_per_series():
    svg = str(charts.grouped_bar_chart("t", "Per month", [("May", [4, 2, 0])], ["A", "B", "C"]))
    assert svg.count("<rect") == 6  # three in the legend, three bars
    assert "<title>May: A: 4, B: 2, C: 0</title>" in svg
    assert 'width="80.00%"' in svg and 'width="40.00%"' in svg and 'width="0%"' in svg


def test_summary_api_for_focal_points_and_coordinators_only(app, client):
    parties = network(app, client)
    _sent(client, parties)
    readers = {
        name: user_party(app, roles, provinces, "reports:read")
        for name, roles, provinces in (
            ("focal_in", ["focal_point"], ["17"]),
            ("focal_out", ["focal_point"], ["12"]),
            ("coordinator", ["coordinator"], ()),
        )
    }
    year_ago = (clock.now().date() - timedelta(days=365)).isoformat()
    inside = client.get("/api/v1/reports/summary", headers=readers["focal_in"].headers)
    assert inside.status_code == 200, inside.get_json()
    body = inside.get_json()
    assert body["total"] == 1 and {"code": "17", "count": 1} in body["by_province"]
    assert body["by_receiving_organization"][0]["name"] == parties["service"].organization.name
    outside = client.get("/api/v1/reports/summary", headers=readers["focal_out"].headers)
    assert outside.get_json()["total"] == 0
    everyone = client.get(
        f"/api/v1/reports/summary?from={year_ago}", headers=readers["coordinator"].headers
    )
    assert everyone.get_json()["total"] == 1 and everyone.get_json()["from"] == year_ago
    late = client.get(
        "/api/v1/reports/summary?from=2030-01-02&to=2030-01-01",
        headers=readers["coordinator"].headers,
    )
    assert late.status_code == 422
    assert (
        client.get(
            "/api/v1/reports/summary?when=x", headers=readers["coordinator"].headers
        ).status_code
        == 422
    )


def test_summary_api_refuses_other_roles_and_scopes(app, client):
    parties = network(app, client)
    assert (
        client.get("/api/v1/reports/summary", headers=parties["sender"].headers).status_code == 403
    )
    assert client.get("/api/v1/reports/summary").status_code == 401


SIEM_REAP, PREAH_SIHANOUK, BATTAMBANG = "17", "18", "02"


def test_focal_points_and_coordinators_land_on_the_dashboard(app):
    for roles in (["focal_point"], ["coordinator"]):
        browser, _ = signed_in(app, roles, provinces=["17"] if "focal_point" in roles else ())
        for path in ("/home", "/"):
            response = browser.get(path, follow_redirects=True)
            assert response.request.path == "/reports", (roles, path)
        assert "/home" not in text(browser.get("/reports"))  # no empty "My referrals" link
    caseworker, _ = signed_in(app, ["caseworker", "focal_point"], provinces=["17"])
    assert caseworker.get("/home").status_code == 200


def test_a_focal_point_sees_a_referral_to_a_service_in_their_province_on_every_page(app, client):
    """A Siem Reap service receives a child from Preah Sihanouk: both provinces' focal points
    count it and open it, and the dashboard says why; Battambang's sees nothing."""
    parties = network(app, client)
    referral = _sent(client, parties, subject__province=PREAH_SIHANOUK)
    assert parties["service"].organization.province == SIEM_REAP
    expected = {
        SIEM_REAP: ("1", {"child_province": 0, "service_province": 1}, 200),
        PREAH_SIHANOUK: ("1", {"child_province": 1, "service_province": 0}, 200),
        BATTAMBANG: ("0", {"child_province": 0, "service_province": 0}, 404),
    }
    for province, (total, reach, status) in expected.items():
        browser, _user = signed_in(app, ["focal_point"], provinces=[province], language="en")
        page = text(browser.get("/reports"))
        assert _figure(page, "total") == total, province
        for reason, count in reach.items():
            assert f'id="reach-{reason}">{count}</dd>' in page, (province, reason)
        assert browser.get(f"/referrals/{referral['id']}").status_code == status, province
        api = user_party(app, ["focal_point"], [province], "reports:read referrals:read")
        summary = client.get("/api/v1/reports/summary", headers=api.headers).get_json()
        assert summary["by_reach"] == [{"code": code, "count": n} for code, n in reach.items()]
        found = client.get(f"/api/v1/referrals/{referral['id']}", headers=api.headers)
        assert found.status_code == status, province
    assert "The receiving service is in your provinces" in page


def test_zeros_fold_away_and_an_empty_period_says_what_it_covered(app, client):
    parties = network(app, client)
    _sent(client, parties)
    browser, _ = signed_in(app, ["focal_point"], provinces=["17"], language="en")
    page = text(browser.get("/reports"))
    status_section = page.split('id="status-heading"')[1].split("</section>")[0]
    assert status_section.count("<tr>") == 2  # the header and "Sent"
    assert "None in this period: Received, Accepted" in status_section
    assert "empty-period" not in page
    empty = text(browser.get("/reports?from=2020-01-01&to=2020-02-29"))
    scope = empty.split('id="empty-period">')[1].split("</p>")[0]
    assert "No referrals were sent from" in scope and "Siem Reap" in scope
    assert "No referrals were sent in: January 2020, February 2020." in empty


def test_the_monthly_report_prints_on_a4_in_both_languages(app, client):
    parties = network(app, client)
    _sent(client, parties)
    month = clock.now().strftime("%Y-%m")
    browser, _ = signed_in(app, ["coordinator"])
    english = browser.get(f"/reports/print?month={month}", headers={"Accept-Language": "en"})
    page = text(english)
    assert english.status_code == 200 and len(english.data) < 100_000
    assert clock.now().strftime("%B %Y") in page and "report-print.css" in page
    assert "<script" not in page and 'id="trend-table"' in page
    for value in PERSONAL_VALUES:
        assert value not in page
    css = text(app.test_client().get("/static/report-print.css"))
    assert "size: A4" in css and "@media print" in css
    khmer = text(browser.get(f"/reports/print?month={month}", headers={"Accept-Language": "km"}))
    assert 'lang="km"' in khmer and format_date(clock.now(), "MMMM", locale="km") in khmer
    wrong = browser.get("/reports/print?month=2026-13", headers={"Accept-Language": "en"})
    assert wrong.status_code == 422


def _pdf_text(data):
    """The PDF's bytes with each compressed stream inflated, to look for names in it."""
    parts = [data]
    for start in re.finditer(rb"stream\r?\n", data):
        try:
            parts.append(zlib.decompressobj().decompress(data[start.end() :]))
        except zlib.error:
            continue
    return b"\n".join(parts)


def test_the_monthly_report_as_a_pdf_in_english_and_khmer(app, client):
    parties = network(app, client)
    _sent(client, parties)
    month = clock.now().strftime("%Y-%m")
    browser, _ = signed_in(app, ["focal_point"], provinces=["17"])
    english = browser.get(f"/reports/print.pdf?month={month}", headers={"Accept-Language": "en"})
    assert english.status_code == 200 and english.mimetype == "application/pdf"
    assert english.data.startswith(b"%PDF")
    assert english.headers["Content-Disposition"] == (
        f'attachment; filename="referral-report-{month}.pdf"'
    )
    assert clock.now().strftime("%B %Y").encode() in _pdf_text(english.data)  # title, outline
    khmer = browser.get(f"/reports/print.pdf?month={month}", headers={"Accept-Language": "km"})
    inside = _pdf_text(khmer.data)
    assert khmer.data.startswith(b"%PDF")
    assert re.search(rb"/FontName\s*/[A-Z]{6}\+Khmer-OS", inside)  # a Khmer font embedded
    # Its glyphs map back to letters of the Khmer block (U+1780 to U+17FF).
    assert re.search(rb"<17[89A-Fa-f][0-9A-Fa-f]>", inside)
    khmer_month = format_date(clock.now(), "MMMM y", locale="km").encode("utf-16-be").hex()
    assert khmer_month.encode() in inside.lower()


def test_the_printed_month_shows_its_times_and_the_months_before_it(app, client):
    """Sent on 10 January, received 2 hours later and accepted 30 hours after sending: the
    report for January shows both times and says that August to December had no referral."""
    parties = network(app, client)
    sent_at = datetime(2026, 1, 10, 2, tzinfo=UTC)
    clock.freeze(sent_at)
    try:
        referral = _sent(client, parties)
        clock.freeze(sent_at + timedelta(hours=2))
        referral = move(client, parties["receiver"], referral, "received").get_json()
        clock.freeze(sent_at + timedelta(hours=30))
        move(client, parties["receiver"], referral, "accepted")
        browser, _ = signed_in(app, ["coordinator"], language="en")
        page = text(browser.get("/reports/print?month=2026-01"))
    finally:
        clock.freeze(None)
    receipt = page.split('id="times-receive-table"')[1].split("</table>")[0]
    acceptance = page.split('id="times-accept-table"')[1].split("</table>")[0]
    assert '<th scope="row">January 2026</th><td>2 hours</td><td>2 hours</td>' in receipt
    assert "<td>30 hours</td><td>30 hours</td>" in acceptance
    assert "No referrals were sent in: August 2025, September 2025, October 2025, " in page
    assert 'id="figure-total">1</dd>' in page


def test_a_long_period_shows_its_last_twelve_months_and_the_csv_has_every_month(app, client):
    parties = network(app, client)
    try:
        for month in range(1, 15):  # January 2025 to February 2026
            clock.freeze(datetime(2025 + (month - 1) // 12, (month - 1) % 12 + 1, 15, tzinfo=UTC))
            _sent(client, parties)
    finally:
        clock.freeze(None)
    browser, _ = signed_in(app, ["coordinator"], language="en")
    period = "from=2025-01-01&to=2026-02-28"
    page = text(browser.get(f"/reports?{period}"))
    trend = page.split('id="trend-table"')[1].split("</table>")[0]
    assert trend.count('<th scope="row">') == 12 and "March 2025" in trend
    assert "February 2025" not in trend and 'id="trend-cut"' in page
    assert _figure(page, "total") == "14"
    csv_rows = list(csv.reader(io.StringIO(text(browser.get(f"/reports/figures.csv?{period}")))))
    sent = [row[1:] for row in csv_rows if row[0] == "month_sent"]
    assert len(sent) == 14 and sent[0] == ["2025-01", "January 2025", "1"]
    assert ["month_median_hours_to_receive", "2025-01", "January 2025", ""] in csv_rows
    short = text(browser.get("/reports?from=2025-01-01&to=2025-12-31"))
    assert 'id="trend-cut"' not in short
