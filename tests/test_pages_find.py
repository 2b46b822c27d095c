"""Finding a service: what each result shows, to whom, the filters, and a page's weight."""

import re

from referral_hub.directory.views import PAGE_SIZE

from .factories import add_location, make_org, make_service, report_capacity
from .pages import signed_in, text

CARD = re.compile(r'<li class="card">(.*?)</li>', re.S)


def _results(page):
    return CARD.findall(page.split("<h2>", 1)[1]) if "<h2>" in page else []


def _names(page):
    return [re.search(r"<h3><a [^>]*>([^<]+)</a>", card).group(1) for card in _results(page)]


def test_a_safe_house_address_is_hidden_from_focal_points_and_shown_to_partners(app):
    house = make_service(make_org(), name="Safe House", categories=["detox"])
    add_location(house, "Girls shelter", "Street 99, house 7", confidential=True)
    focal, _ = signed_in(app, roles=("focal_point",), provinces=("17",), language="en")
    caseworker, _ = signed_in(app, language="en")

    hidden = _results(text(focal.get("/find?category=detox")))
    assert len(hidden) == 1 and "Girls shelter" in hidden[0]
    assert "Street 99" not in hidden[0] and "Confidential address" in hidden[0]
    shown = _results(text(caseworker.get("/find?category=detox")))
    assert "Street 99, house 7" in shown[0]


def test_each_result_shows_capacity_eligibility_and_contact(app):
    home = make_service(
        make_org(),
        name="Girls Recovery Home",
        categories=["detox"],
        minimum_age=10,
        maximum_age=18,
        eligibility_sex="female",
        email="intake@recovery.example.org",
        phones=[{"number": "+855 12 345 678", "description": "intake desk"}],
    )
    report_capacity(home, capacity_status="waitlist", places_free=3)
    browser, _ = signed_in(app, language="en")
    (card,) = _results(text(browser.get("/find?category=detox")))
    assert "Waiting list" in card and "3 places free" in card
    assert "Ages 10 to 18, girls and women only" in card
    assert 'href="tel:+85512345678"' in card and "intake desk" in card
    assert 'href="mailto:intake@recovery.example.org"' in card


def test_words_language_and_province_filters(app):
    owner = make_org()
    make_service(
        owner, name="Literacy Club", categories=["legal_aid"], areas=["12"], languages=["km"]
    )
    make_service(
        owner, name="Tutoring Centre", categories=["legal_aid"], areas=["17"], languages=["en"]
    )
    browser, _ = signed_in(app, language="en")
    assert _names(text(browser.get("/find?q=literacy"))) == ["Literacy Club"]
    assert _names(text(browser.get("/find?language=en"))) == ["Tutoring Centre"]
    assert _names(text(browser.get("/find?province=12"))) == ["Literacy Club"]
    assert _names(text(browser.get("/find?province=17&language=km"))) == []


def _full_service(owner, number):
    """A service with everything a result shows, as long as real entries are."""
    service = make_service(
        owner,
        name=f"មណ្ឌលស្ដារនីតិសម្បទា និងព្យាបាលការញៀនគ្រឿងញៀនសម្រាប់យុវជន {number}",
        categories=["detox", "legal_aid", "mental_health_counselling"],
        areas=["17", "1701", "1702", "12"],
        languages=["km", "en", "fr"],
        minimum_age=12,
        maximum_age=24,
        eligibility_sex="male",
        capacity_status="available",
        places_free=12,
        email=f"intake.youth.recovery.{number}@organisation.example.org",
        phones=[
            {"number": "+855 12 345 678", "description": "ការិយាល័យទទួលករណី ម៉ោង ៨ ដល់ ៥"},
            {"number": "+855 97 765 4321", "description": "ទូរស័ព្ទបន្ទាន់ ២៤ ម៉ោង"},
        ],
    )
    address = "ផ្ទះលេខ ១២៣ ផ្លូវ ៦០ ភូមិវត្តបូព៌ សង្កាត់សាលាកំរើក ក្រុងសៀមរាប ខេត្តសៀមរាប"
    add_location(service, f"មណ្ឌលសៀមរាប {number}", address)


def test_a_full_page_of_khmer_results_stays_light_and_leads_to_the_rest(app):
    owner = make_org("អង្គការជំនួយកុមារ និងគ្រួសារនៅកម្ពុជា")
    for number in range(PAGE_SIZE + 5):
        _full_service(owner, number)
    browser, _ = signed_in(app, language="km")
    response = browser.get("/find?category=detox")
    page = text(response)
    assert len(_results(page)) == PAGE_SIZE == 20
    assert len(response.data) < 100_000, len(response.data)
    more = re.search(r'<a class="button secondary" href="([^"]+)">', page).group(1)
    rest = text(browser.get(more.replace("&amp;", "&")))
    assert len(_results(rest)) == 5 and 'class="button secondary"' not in rest


def test_a_search_with_no_filter_lists_services_count_first_with_the_filters_folded(app):
    owner = make_org()
    for name in ("Alpha Shelter", "Beta Clinic", "Gamma Legal Aid"):
        make_service(owner, name=name)
    browser, _ = signed_in(app, language="en")
    first_visit = text(browser.get("/find"))
    assert "filters-fold" not in first_visit and not _results(first_visit)
    empty_form = "/find?q=&category=&province=&district=&age=&sex=&language=&accepting="
    page = text(browser.get(empty_form))
    assert _names(page) == ["Alpha Shelter", "Beta Clinic", "Gamma Legal Aid"]
    count = page.index('id="result-count"')
    assert "3 services found" in page[count:]
    assert count < page.index('<details class="filters-fold">') < page.index("Alpha Shelter")
    assert '<details class="filters-fold" open' not in page


def test_the_readers_own_organisation_is_left_out_unless_they_ask(app):
    mine, theirs = make_org(), make_org()
    make_service(mine, name="Our Own Shelter", categories=["detox"])
    make_service(theirs, name="Partner Shelter", categories=["detox"])
    browser, _ = signed_in(app, organization=mine, language="en")
    default = text(browser.get("/find?category=detox"))
    assert _names(default) == ["Partner Shelter"] and "1 service found" in default
    assert "services are left out." in default
    assert 'name="include_mine" value="yes" >' in default  # the box, not ticked
    included = text(browser.get("/find?category=detox&include_mine=yes"))
    assert _names(included) == ["Our Own Shelter", "Partner Shelter"]
    assert "2 services found" in included and "are left out" not in included


def test_a_refused_filter_says_so_in_the_readers_language(app):
    browser, _ = signed_in(app, language="km")
    page = text(browser.get("/find?province=Siem+Reap&age=200&q=" + "x" * 201))
    assert "String does not match" not in page and "Must be greater" not in page
    assert page.count('class="field-error"') == 3
    for message in ("Choose one from the list.", "Type an age in years, from 0 to 120."):
        assert message not in page  # in Khmer, not English
    assert 'id="result-count"' not in page and "filters-fold" not in page
