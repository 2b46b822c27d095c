"""The caseworkers' flow in a real browser (Debian's Chromium driven by Playwright), on a
phone-sized screen, in English and in Khmer. Screenshots of each step go to tests/artifacts/."""

import os
import re
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask_babel import force_locale
from flask_babel import gettext as _

from referral_hub.extensions import db
from referral_hub.referrals.models import Referral

from .factories import PASSWORD, make_org, make_service, make_user
from .referral_fixtures import FAMILY_NAME, GIVEN_NAME, PHONE

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
PHONE_SCREEN = {"width": 360, "height": 740}

if not os.path.exists(CHROMIUM) and not os.environ.get("REQUIRE_BROWSER"):
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)

pytest.importorskip("playwright.sync_api")


class Person:
    """One user in their own browser window, taking screenshots as they go."""

    def __init__(self, browser, base_url, user, language, shots):
        # No JavaScript: the pages must work without it.
        self.context = browser.new_context(
            viewport=PHONE_SCREEN, locale=language, java_script_enabled=False
        )
        self.page = self.context.new_page()
        self.base_url, self.user, self.language, self.shots = base_url, user, language, shots

    def shot(self, name):
        self.shots.mkdir(parents=True, exist_ok=True)
        count = len(list(self.shots.glob("*.png"))) + 1
        self.page.screenshot(path=self.shots / f"{count:02d}-{name}.png", full_page=True)
        width = self.page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE_SCREEN["width"], f"{name}: the page scrolls sideways ({width} px)"

    def sign_in(self):
        self.page.goto(self.base_url + "/login")
        self.page.locator(f'header button[value="{self.language}"]').click()
        self.page.fill('input[name="email"]', self.user.email)
        self.page.fill('input[name="password"]', PASSWORD)
        self.page.locator('main button[type="submit"]').click()
        self.page.wait_for_load_state()


def _network():
    sender_org = make_org("Friends of Siem Reap", province="17")
    receiver_org = make_org("Water Lily Recovery", province="17")
    service = make_service(
        receiver_org,
        name="Water Lily Youth Detox",
        categories=["detox"],
        areas=["17"],
        minimum_age=12,
        maximum_age=18,
        eligibility_sex="male",
    )
    make_service(receiver_org, name="Adult Rehabilitation", categories=["detox"], minimum_age=18)
    people = {
        # A long address, as real ones are: the header must still fit a phone.
        "a": make_user(
            sender_org,
            roles=["caseworker"],
            email=f"{uuid.uuid4().hex[:6]}.sophea@friendsofsiemreap.example.org",
        ),
        "b": make_user(receiver_org, roles=["caseworker"]),
        "focal": make_user(make_org("DoSVY Siem Reap"), roles=["focal_point"], provinces=["17"]),
    }
    return service, people


def _in(language, text):
    with force_locale(language):
        return _(text)


@pytest.mark.parametrize("language", ["en", "km"])
def test_a_referral_goes_from_caseworker_a_to_b_and_the_focal_point_counts_it(
    app, live_server, browser, language
):
    service, people = _network()
    shots = ARTIFACTS / f"referral-flow-{language}"
    for old in shots.glob("*.png"):
        old.unlink()

    a = Person(browser, live_server, people["a"], language, shots)
    a.sign_in()
    a.shot("a-home")
    a.page.goto(live_server + "/find")
    a.page.select_option('select[name="category"]', "detox")
    a.page.select_option('select[name="province"]', "17")
    a.page.fill('input[name="age"]', "16")
    a.page.select_option('select[name="accepting"]', "true")
    a.page.locator('main form button[type="submit"]').click()
    a.shot("a-search-results")
    results = a.page.locator("ul.cards > li")
    assert results.count() == 1
    assert "Water Lily Youth Detox" in results.first.inner_text()
    results.first.locator(f'a[href="/services/{service.id}/refer"]').click()

    # Consent first: what the guardian agreed to share, then only those categories.
    a.page.select_option('select[name="consent.given_by"]', "guardian")
    a.page.select_option('select[name="consent.method"]', "thumbprint")
    a.page.locator('input[name="consent.categories"][value="identity"]').check()
    a.page.locator('input[name="consent.categories"][value="contact"]').check()
    a.shot("a-referral-consent")
    a.page.locator('button[name="go"][value="details"]').click()
    a.page.locator('input[name="urgency"][value="high"]').check()
    a.page.select_option('select[name="subject.sex"]', "male")
    a.page.fill('input[name="subject.age"]', "16")
    a.page.fill('input[name="subject.identity.given_name"]', GIVEN_NAME)
    a.page.fill('input[name="subject.identity.family_name"]', FAMILY_NAME)
    a.page.fill('input[name="subject.contact.phone"]', PHONE)
    a.shot("a-referral-form")
    a.page.locator('button[name="go"][value="send"]').click()
    # The province is missing: the form comes back with the error beside it, the rest kept.
    assert a.page.locator('[id="subject.province-error"]').is_visible()
    assert a.page.locator('input[name="subject.identity.given_name"]').input_value() == GIVEN_NAME
    a.shot("a-form-error-kept")
    a.page.select_option('select[name="subject.province"]', "17")
    a.page.locator('button[name="go"][value="send"]').click()
    a.page.wait_for_url(re.compile(r"/referrals/"))
    a.shot("a-referral-sent")
    referral_id = a.page.url.rsplit("/", 1)[1]
    assert db.session.get(Referral, referral_id).status == "sent"

    b = Person(browser, live_server, people["b"], language, shots)
    b.sign_in()
    waiting = b.page.locator("#awaiting-list li").first
    assert "Water Lily Youth Detox" in waiting.inner_text()
    assert GIVEN_NAME not in b.page.content()
    b.shot("b-home-waiting")
    waiting.locator("h3 a").click()
    assert GIVEN_NAME in b.page.inner_text("#personal")
    b.page.locator('form:has(input[name="status"][value="received"]) button').click()
    b.page.locator('form:has(input[name="status"][value="accepted"]) button').click()
    b.shot("b-accepted")
    assert b.page.inner_text("#status") == _in(language, "Accepted")

    a.page.goto(f"{live_server}/referrals/{referral_id}")
    assert a.page.inner_text("#status") == _in(language, "Accepted")
    a.shot("a-sees-accepted")

    focal = Person(browser, live_server, people["focal"], language, shots)
    focal.sign_in()
    focal.page.goto(live_server + "/reports")
    focal.shot("focal-dashboard")
    dashboard = focal.page.content()
    assert GIVEN_NAME not in dashboard and FAMILY_NAME not in dashboard
    by_status = focal.page.locator('section[aria-labelledby="status-heading"] tbody tr')
    cells = [[td.text_content() for td in row.locator("td").all()] for row in by_status.all()]
    assert dict(cells) == {_in(language, "Accepted"): "1"}  # counted once; zero rows folded
    assert focal.page.locator('section[aria-labelledby="status-heading"] .zeros').count() == 1
    _assert_charts_fill_their_column_with_readable_labels(focal.page)
    for person in (a, b, focal):
        person.context.close()


CHART_MEASURES = """() => [...document.querySelectorAll('svg.chart')].map(svg => ({
    width: svg.getBoundingClientRect().width,
    column: svg.parentElement.parentElement.getBoundingClientRect().width,
    labels: [...svg.querySelectorAll('text')].map(text => ({
        font: parseFloat(getComputedStyle(text).fontSize),
        drawn: text.getBoundingClientRect().height,
    })),
}))"""


def _assert_charts_fill_their_column_with_readable_labels(page):
    """Every chart as wide as its section, every label drawn at least 14 px tall at 360 px."""
    assert page.viewport_size["width"] == 360
    charts = page.evaluate(CHART_MEASURES)
    assert len(charts) >= 3
    for chart in charts:
        assert chart["width"] >= chart["column"] - 1, chart
        assert chart["labels"], chart
        for label in chart["labels"]:
            assert label["font"] >= 14 and label["drawn"] >= 14, (chart, label)


@pytest.mark.parametrize("language", ["en", "km"])
def test_admin_and_coordinator_pages_fit_a_phone(app, live_server, browser, language):
    service, people = _network()
    organization = service.organization
    admin = make_user(
        organization,
        roles=["org_admin", "coordinator"],
        email=f"{uuid.uuid4().hex[:6]}.administrator@waterlilyrecovery.example.org",
    )
    shots = ARTIFACTS / f"admin-pages-{language}"
    for old in shots.glob("*.png"):
        old.unlink()
    person = Person(browser, live_server, admin, language, shots)
    person.sign_in()
    pages = {
        "users": "/admin/users",
        "user": f"/admin/users/{people['b'].id}",
        "clients": "/admin/clients",
        "callbacks": "/callbacks",
        "capacity": "/capacity",
        "organizations": "/curation/organizations",
        "organization": f"/curation/organizations/{organization.id}",
        "service": f"/curation/services/{service.id}",
        "overdue": "/network/overdue",
        "audit": "/audit",
        "reports": "/reports",
    }
    for name, path in pages.items():
        response = person.page.goto(live_server + path)
        # An error page or a detour to the sign-in page must not pass for the page itself.
        assert response.status == 200, f"{name}: {response.status}"
        assert urlsplit(person.page.url).path == path, f"{name}: ended at {person.page.url}"
        assert person.page.locator("main h1").inner_text().strip(), f"{name}: no heading"
        person.shot(name)  # fails when the page scrolls sideways
    person.context.close()


def test_signing_in_and_moving_around_works_with_the_keyboard_alone(app, live_server, browser):
    user = make_user(make_org(), roles=["caseworker"])
    # The test reads the focus with a script; the page itself has none.
    context = browser.new_context(viewport=PHONE_SCREEN, locale="en-US")
    page = context.new_page()
    page.goto(live_server + "/login")
    # autofocus: Chromium applies it once the page has rendered, which a busy machine delays
    page.wait_for_function("document.activeElement && document.activeElement.name === 'email'")
    page.keyboard.type(user.email)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/home$"))
    visited = []
    for _step in range(12):  # home's reference search and its filter come before its lists
        page.keyboard.press("Tab")
        visited.append(page.evaluate("document.activeElement.textContent.trim()"))
    find = _in("en", "Find a service")  # the browser prefers English
    assert visited[0] == _in("en", "Skip to the content") and find in visited, visited
    page.keyboard.press("Shift+Tab")
    while page.evaluate("document.activeElement.textContent.trim()") != find:
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/find$"))
    context.close()


def test_the_monthly_report_prints_on_a4_paper(app, live_server, browser):
    """Chromium's own Print gives A4 pages (595 x 842 pt) from the report's print stylesheet,
    without the links meant for the screen."""
    _service, people = _network()
    shots = ARTIFACTS / "monthly-report"
    for old in shots.glob("*.png"):
        old.unlink()
    focal = Person(browser, live_server, people["focal"], "en", shots)
    focal.sign_in()
    assert urlsplit(focal.page.url).path == "/reports"  # a focal point lands on the dashboard
    focal.page.goto(live_server + "/reports/print")
    focal.shot("print-page")
    focal.page.emulate_media(media="print")
    assert not focal.page.locator(".screen-only").is_visible()
    paper = focal.page.pdf(prefer_css_page_size=True)
    sizes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", paper)
    assert sizes and {(round(float(w)), round(float(h))) for w, h in sizes} == {(595, 842)}
    focal.context.close()
