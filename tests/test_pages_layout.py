"""The layout's server side: one date format in both languages, date fields that say their
format, the Khmer web fonts the hub serves, and tables that can turn into cards."""

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from flask_babel import force_locale

from referral_hub.web.dates import day, day_and_time

from .pages import referral_id_of, send_referral, signed_in, text, two_partners

STATIC = Path(__file__).resolve().parent.parent / "referral_hub" / "static"
TEMPLATES = STATIC.parent / "templates"
SHORT_DATE = re.compile(r"\b\d{1,2}/\d{1,2}/\d{2,4}\b")


@pytest.mark.parametrize(
    ("language", "shown"), [("en", "7 Dec 2026, 14:05"), ("km", "7 ធ្នូ 2026, 14:05")]
)
def test_a_moment_reads_day_month_year_on_a_24_hour_clock_in_cambodian_time(app, language, shown):
    moment = datetime(2026, 12, 7, 7, 5, tzinfo=UTC)  # 14:05 in Phnom Penh
    with app.test_request_context(), force_locale(language):
        assert day_and_time(moment) == shown
        assert day(moment) == shown.split(",")[0]
        assert day(date(2026, 12, 7)) == shown.split(",")[0]


@pytest.mark.parametrize("language", ["en", "km"])
def test_pages_show_dates_day_first_and_never_as_digits_and_slashes(app, language):
    sender, _receiver, detox = two_partners(app, language)
    referral_id = referral_id_of(send_referral(sender, detox))
    for path in ("/home", f"/referrals/{referral_id}"):
        page = text(sender.get(path))
        assert re.search(r"\d{1,2} \S+ 20\d\d, \d\d:\d\d", page), path
        assert not SHORT_DATE.search(page), path


@pytest.mark.parametrize("language", ["en", "km"])
def test_date_fields_are_text_fields_that_say_the_format_they_expect(app, language):
    browser, _user = signed_in(app, ("focal_point",), provinces=["17"], language=language)
    page = text(browser.get("/reports"))
    field = re.search(r'<input id="from"[^>]*>', page).group(0)
    assert 'type="text"' in field and 'aria-describedby="from-hint"' in field
    hint = re.search(r'<p class="hint" id="from-hint">([^<]*)</p>', page).group(1)
    assert "2026-12-07" in hint
    assert ("Year-month-day" in hint) == (language == "en")


def test_the_khmer_fonts_are_served_small_with_their_licence(client):
    css = text(client.get("/static/hub.css"))
    faces = re.findall(r"@font-face \{[^}]*\}", css)
    assert len(faces) == 2 and all("font-display: swap" in face for face in faces)
    for weight in ("Regular", "Bold"):
        name = f"NotoSansKhmer-{weight}.woff2"
        assert f"fonts/{name}" in css
        response = client.get(f"/static/fonts/{name}")
        assert response.status_code == 200 and response.mimetype == "font/woff2"
        assert len(response.data) <= 60 * 1024
    assert "SIL Open Font License" in (STATIC / "fonts" / "OFL.txt").read_text()


def test_every_table_cell_names_its_column_for_the_phone_cards():
    """Below 600 px a table is a stack of cards, each cell shown under its data-label."""
    unlabelled = []
    for template in TEMPLATES.rglob("*.html"):
        for body in re.findall(r"<tbody>.*?</tbody>", template.read_text(), re.S):
            for cell in re.findall(r"<t[dh](?: [^>]*)?>", body):
                if "data-label" not in cell and "colspan" not in cell:
                    unlabelled.append(f"{template.relative_to(TEMPLATES)}: {cell}")
    assert not unlabelled, "add data-label to: " + ", ".join(unlabelled)
