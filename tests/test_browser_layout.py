"""The phone-sized layout in a real browser (Chromium, 360 x 740), in English and in Khmer: every
page of every role has controls a thumb can hit and does not scroll sideways, the header fits,
tables turn into cards, dates read day-month-year, and Khmer headings are drawn in a real bold."""

import re
import uuid
from urllib.parse import urlencode

import pytest
from babel.dates import get_month_names
from playwright.sync_api import Error as PlaywrightError

from referral_hub.callbacks.models import EVENT_TYPES, Subscription
from referral_hub.extensions import db
from referral_hub.web.error_pages import API_PREFIXES

from .factories import REDIRECT_URI, make_client, make_org, make_user, pkce_pair, sign_in
from .pages import referral_id_of, save_draft, send_referral, submit
from .test_browser import PHONE_SCREEN, Person, _network
from .test_pages_callbacks import delivery

SMALLEST_TARGET = 44  # CSS px, width and height
HIGHEST_HEADER = 100
NOT_PAGES = {"static", "brand.favicon", "health.healthz", "health.readyz", "health.openapi"}

# Every control a finger may tap; each is measured with the <details> on the page open.
MEASURE_CONTROLS = """() => {
  const least = LEAST;
  const banner = document.querySelector('header');  // the printed report has none
  const header = banner ? banner.getBoundingClientRect().height : 0;
  const closedWidth = document.documentElement.scrollWidth;
  for (const details of document.querySelectorAll('details')) details.open = true;
  const selector = 'a[href], button, input:not([type=hidden]), select, textarea, summary';
  const small = [];
  let measured = 0;
  for (const control of document.querySelectorAll(selector)) {
    const box = control.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;  // not drawn, so not tappable
    measured += 1;
    if (Math.min(box.width, box.height) < least - 0.01) {
      const size = `${box.width.toFixed(1)} x ${box.height.toFixed(1)}`;
      small.push(`${control.outerHTML.slice(0, 100)}: ${size}`);
    }
  }
  const width = Math.max(closedWidth, document.documentElement.scrollWidth);
  for (const details of document.querySelectorAll('details')) details.open = false;
  return {header, measured, small, width, text: document.body.innerText};
}""".replace("LEAST", str(SMALLEST_TARGET))

SHORT_DATE = re.compile(r"\b\d{1,2}/\d{1,2}/\d{2,4}\b")  # 12/7/26: read 12 July in Cambodia


def day_and_time_pattern(language):
    months = "|".join(map(re.escape, get_month_names("abbreviated", locale=language).values()))
    return re.compile(rf"\b\d{{1,2}} ({months}) \d{{4}}, \d{{2}}:\d{{2}}")


def _signed_in(app, user):
    """A test client signed in as user, to set up what the browser then shows."""
    browser = app.test_client()
    assert sign_in(browser, user.email).status_code == 302
    return browser


def _hub(app):
    """Demo-like data: a referral sent between two organisations, a callback with its log."""
    service, network = _network()
    receiver_org = service.organization
    caseworker = network["a"]
    referral_id = referral_id_of(send_referral(_signed_in(app, caseworker), service))
    draft_id = save_draft(_signed_in(app, caseworker), service)
    admin = make_user(receiver_org, roles=["org_admin", "caseworker"])
    hook = "http://127.0.0.1:9/hook"
    submit(_signed_in(app, admin), "/callbacks", url=hook, event_types=list(EVENT_TYPES))
    subscription = db.session.scalars(db.select(Subscription)).one()
    delivery(subscription, "failed", 1, attempts=[(500, "Server error", 120)])
    client_id, _secret = make_client(
        receiver_org, ["directory:read"], ["authorization_code"], redirect_uris=[REDIRECT_URI]
    )
    _verifier, challenge = pkce_pair()
    authorize = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "directory:read",
        "state": "layout",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    people = {
        "caseworker": caseworker,
        "org_admin": admin,
        "coordinator": make_user(make_org("3PC Network"), roles=["coordinator"]),
        "focal_point": network["focal"],
    }
    values = {
        "referral_id": referral_id,
        "draft_id": draft_id,
        "service_id": service.id,
        "organization_id": receiver_org.id,
        "user_id": network["b"].id,
        "subscription_id": subscription.id,
        "client_id": client_id,
        "auth_pages.authorize": urlencode(authorize),  # the query of the approval page
        # the queries of the pages asking once more before a drastic action
        "referral_pages.confirm_status": "status=withdrawn",
        "referral_pages.confirm_consent_withdrawal": "erase=yes",
        "curation_pages.confirm_retirement": "status=defunct",
    }
    return people, values


def page_paths(app, values):
    """{endpoint: path} of every page a browser may open, its parameters filled from values."""
    paths, unknown = {}, set()
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint in NOT_PAGES:
            continue
        if rule.rule.startswith(API_PREFIXES):
            continue
        missing = set(rule.arguments) - set(values)
        if missing:
            unknown.add(f"{rule.rule} needs {sorted(missing)}")
            continue
        path = rule.rule
        for name in rule.arguments:
            path = re.sub(rf"<(\w+:)?{name}>", str(values[name]), path)
        query = values.get(rule.endpoint)
        paths[rule.endpoint] = f"{path}?{query}" if query else path
    assert not unknown, f"give the layout test a value for: {sorted(unknown)}"
    return paths


@pytest.mark.parametrize("language", ["en", "km"])
def test_every_page_of_every_role_has_tap_sized_controls_and_fits_a_phone(
    app, live_server, browser, language
):
    people, values = _hub(app)
    paths = page_paths(app, values)
    shown, downloads, failures = set(), set(), []
    for role, user in people.items():
        person = Person(browser, live_server, user, language, shots=None)
        person.sign_in()
        for endpoint, path in paths.items():
            try:
                response = person.page.goto(live_server + path)
            except PlaywrightError as error:  # a download (figures.csv) is not a page
                assert "Download is starting" in str(error), error
                downloads.add(endpoint)
                continue
            if response.status != 200 or "text/html" not in response.headers["content-type"]:
                continue  # not this role's page (or not a page): another role's visit checks it
            shown.add(endpoint)
            where = f"{role} {endpoint}"
            page = person.page.evaluate(MEASURE_CONTROLS)
            assert page["measured"], f"{where}: no control at all?"
            failures += [f"{where}: {control}" for control in page["small"]]
            if page["width"] > PHONE_SCREEN["width"]:
                failures.append(f"{where}: scrolls sideways ({page['width']} px)")
            if page["header"] > HIGHEST_HEADER:
                failures.append(f"{where}: header {page['header']} px high")
            failures += [f"{where}: date {d}" for d in SHORT_DATE.findall(page["text"])]
        person.context.close()
    unseen = set(paths) - shown - downloads
    assert not unseen, f"no role could open {sorted(unseen)}"
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("language", ["en", "km"])
def test_dates_read_day_month_year_on_a_24_hour_clock(app, live_server, browser, language):
    people, values = _hub(app)
    person = Person(browser, live_server, people["caseworker"], language, shots=None)
    person.sign_in()
    person.page.goto(f"{live_server}/referrals/{values['referral_id']}")
    shown = person.page.inner_text("main")
    due = day_and_time_pattern(language).search(shown)
    assert due, shown
    assert not SHORT_DATE.search(shown)
    person.context.close()


def test_khmer_headings_and_labels_are_drawn_in_the_served_bold_face(app, live_server, browser):
    people, _values = _hub(app)
    person = Person(browser, live_server, people["caseworker"], "km", shots=None)
    person.sign_in()
    person.page.goto(live_server + "/find")
    drawn = person.page.evaluate(
        """async () => {
          await document.fonts.ready;
          const style = (selector) => getComputedStyle(document.querySelector(selector));
          const link = style('header nav a');
          const loaded = [...document.fonts]
            .filter((face) => face.family.replace(/"/g, '') === 'Hub Khmer')
            .filter((face) => face.status === 'loaded')
            .map((face) => face.weight);
          return {
            heading: [style('main h1').fontFamily, style('main h1').fontWeight],
            label: [style('main label').fontFamily, style('main label').fontWeight],
            loaded,
            display: [...document.fonts].map((face) => face.display),
            underline: [link.textUnderlineOffset, link.textDecorationSkipInk],
          };
        }"""
    )
    for family, weight in (drawn["heading"], drawn["label"]):
        assert family.startswith('"Hub Khmer"') and weight == "700", drawn
    assert sorted(drawn["loaded"]) == ["400", "700"], drawn
    assert set(drawn["display"]) == {"swap"}, drawn
    offset, skip_ink = drawn["underline"]
    assert float(offset.removesuffix("px")) >= 8 and skip_ink == "auto", drawn  # .55em of 16 px
    person.context.close()


@pytest.mark.parametrize("language", ["en", "km"])
def test_tables_are_cards_and_facts_stack_on_a_phone(app, live_server, browser, language):
    people, values = _hub(app)
    person = Person(browser, live_server, people["org_admin"], language, shots=None)
    person.sign_in()
    person.page.goto(live_server + "/admin/users")
    cell = person.page.locator("main tbody td").first
    looks = """(cell) => ({
        row: getComputedStyle(cell.parentElement).display,
        label: getComputedStyle(cell, '::before').content,
        dataLabel: cell.dataset.label,
    })"""
    on_phone = cell.evaluate(looks)
    assert on_phone["row"] == "block" and on_phone["label"] == f'"{on_phone["dataLabel"]}"'
    person.page.goto(f"{live_server}/admin/users/{values['user_id']}")
    term, value = person.page.locator("main dl dt").first, person.page.locator("main dl dd").first
    assert term.bounding_box()["y"] + term.bounding_box()["height"] <= value.bounding_box()["y"]
    assert value.bounding_box()["width"] > 0.8 * (PHONE_SCREEN["width"] - 32)

    person.page.set_viewport_size({"width": 800, "height": 740})
    person.page.goto(live_server + "/admin/users")
    assert cell.evaluate(looks)["row"] == "table-row"
    person.context.close()


def test_the_menu_folds_behind_menu_and_opens_without_javascript(app, live_server, browser):
    people, _values = _hub(app)
    person = Person(browser, live_server, people["org_admin"], "en", shots=None)
    person.sign_in()
    menu = person.page.locator("header details")
    assert not person.page.locator('header a[href="/find"]').is_visible()
    menu.locator("summary").click()
    person.page.locator('header a[href="/find"]').click()
    person.page.wait_for_url(re.compile(r"/find$"))
    assert person.page.locator("header").bounding_box()["height"] <= HIGHEST_HEADER
    person.context.close()


def test_signed_out_pages_keep_the_language_switch_tap_sized(app, live_server, browser):
    user = make_user(make_org(), roles=["caseworker"], email=f"{uuid.uuid4().hex[:6]}@x.org")
    person = Person(browser, live_server, user, "km", shots=None)
    person.page.goto(live_server + "/login")
    page = person.page.evaluate(MEASURE_CONTROLS)
    assert not page["small"] and page["header"] <= HIGHEST_HEADER, page["small"]
    person.context.close()
