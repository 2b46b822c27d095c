"""A Khmer reader reads Khmer: the rules' messages built from values, dates and numbers."""

import re
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_datetime

from referral_hub.extensions import db
from referral_hub.referrals.models import Referral
from referral_hub.web.dates import DAY_AND_TIME

from .pages import change_status, referral_id_of, send_referral, signed_in, submit, text
from .pages import two_partners as partners
from .referral_fixtures import move, network, referral_body, send

LATIN_WORD = re.compile(r"[A-Za-z]{2,}")


def _words(html):
    return re.sub(r"<[^>]+>", " ", html)


def _flash(page):
    return _words(re.search(r'<p class="flash error"[^>]*>(.*?)</p>', page, re.S).group(1))


def _error_detail(page):
    """The message of an error page: the paragraph under its title."""
    return _words(re.search(r"</h1>\s*<p>(.*?)</p>", page, re.S).group(1))


def _field_errors(page):
    return [_words(e) for e in re.findall(r'<p class="field-error"[^>]*>(.*?)</p>', page, re.S)]


def _assert_khmer(message):
    assert message.strip() and not LATIN_WORD.search(message), message


def test_a_refused_role_is_explained_in_khmer(app):
    _sender, _receiver, detox = partners(app)
    focal, _ = signed_in(app, roles=("focal_point",), provinces=("17",), language="km")
    response = focal.get(f"/services/{detox.id}/refer")
    assert response.status_code == 403
    detail = _error_detail(text(response))
    _assert_khmer(detail)
    assert "បុគ្គលិកករណី" in detail  # "caseworker", named by its label


def test_a_role_only_coordinators_grant_is_refused_in_khmer(app):
    admin, _ = signed_in(app, roles=("org_admin",), language="km")
    response = submit(admin, "/admin/users", email="new@example.org", roles="coordinator")
    assert response.status_code == 403
    detail = _error_detail(text(response))
    _assert_khmer(detail)
    assert "អ្នកសម្របសម្រួលបណ្ដាញ" in detail


def test_a_stale_version_and_a_refused_move_are_explained_in_khmer(app):
    sender, receiver, detox = partners(app, language="km")
    referral_id = referral_id_of(send_referral(sender, detox))
    url = f"/referrals/{referral_id}"
    submit(receiver, url, f"{url}/status", status="received", version="1")
    submit(receiver, url, f"{url}/status", status="accepted", version="1")
    stale = _flash(text(receiver.get(url)))
    _assert_khmer(stale)
    assert "កំណែទី 2" in stale

    # the sender's move, not the receiver's, even from a form claiming to be confirmed
    change_status(receiver, referral_id, "withdrawn", confirmed="yes")
    refused = _flash(text(receiver.get(url)))
    _assert_khmer(refused)
    assert "«បានទទួល»" in refused and "«បានដកវិញ»" in refused  # from received to withdrawn
    assert db.session.get(Referral, referral_id).status == "received"


def test_eligibility_refusals_are_explained_in_khmer(app):
    sender, _receiver, detox = partners(app, language="km")
    response = send_referral(sender, detox, **{"subject.age": "9", "subject.sex": "female"})
    assert response.status_code == 422
    errors = _field_errors(text(response))
    assert len(errors) == 2
    for message in errors:
        _assert_khmer(message)
    assert any("12" in message for message in errors)


def test_the_api_keeps_the_english_text(app, client):
    parties = network(app, client)
    body = referral_body(parties["service"].id)
    referral = send(client, parties["sender"], body).get_json()
    refused = move(client, parties["receiver"], referral, "withdrawn").get_json()
    assert refused["detail"] == "A receiver cannot move a referral from sent to withdrawn."
    assert refused["errors"] == [{"field": "status", "message": "Allowed now: received."}]


def test_dates_follow_the_language(app):
    sender, _receiver, detox = partners(app, language="km")
    referral_id = referral_id_of(send_referral(sender, detox))
    deadline = db.session.get(Referral, referral_id).deadline_at
    phnom_penh = ZoneInfo("Asia/Phnom_Penh")
    months = Locale.parse("km").months["format"]["abbreviated"].values()

    khmer = text(sender.get(f"/referrals/{referral_id}"))
    shown = format_datetime(deadline, DAY_AND_TIME, tzinfo=phnom_penh, locale="km")
    assert shown in khmer and any(month in shown for month in months)
    sender.set_cookie("hub_lang", "en")
    english = text(sender.get(f"/referrals/{referral_id}"))
    assert format_datetime(deadline, DAY_AND_TIME, tzinfo=phnom_penh, locale="en") in english
    assert shown not in english


def test_an_unknown_category_in_the_find_filters_is_explained_in_khmer(app):
    caseworker, _ = signed_in(app, language="km")
    response = caseworker.get("/find?category=no_such_need")
    (message,) = _field_errors(text(response))
    _assert_khmer(message.replace("no_such_need", ""))
