"""Caseworkers' pages: find a service, send a referral with consent, answer it, see the timeline."""

import re

from referral_hub.extensions import db
from referral_hub.referrals.models import Referral

from .factories import add_location, make_org, make_service
from .pages import (
    REFERRAL_FORM,
    confirm,
    referral_id_of,
    send_referral,
    signed_in,
    submit,
    text,
    two_partners,
)
from .referral_fixtures import CASE_NOTE, GIVEN_NAME, PHONE


def test_find_filters_by_category_area_age_and_accepting(app):
    sender, _receiver, detox = two_partners(app)
    page = text(sender.get("/find?category=detox&district=1701&age=16&sex=male&accepting=true"))
    assert "Water Lily Detox" in page and "Legal Aid Desk" not in page
    assert f"/services/{detox.id}/refer" in page
    assert "Water Lily Detox" not in text(sender.get("/find?category=detox&age=9"))


def test_find_shows_bad_filters_next_to_the_field(app):
    sender, _receiver, _detox = two_partners(app)
    page = text(sender.get("/find?age=-3&province=99"))
    assert 'id="age-error"' in page and 'id="province-error"' in page


def test_a_referral_is_sent_then_answered_and_both_sides_see_it(app):
    sender, receiver, detox = two_partners(app)
    response = send_referral(sender, detox)
    assert response.status_code == 302, text(response)
    referral_id = referral_id_of(response)
    home = text(receiver.get("/home"))
    assert f"/referrals/{referral_id}" in home.split('id="awaiting-list"')[1]
    assert GIVEN_NAME not in home  # lists never carry names

    page = text(receiver.get(f"/referrals/{referral_id}"))
    assert GIVEN_NAME in page and PHONE in page
    assert CASE_NOTE not in page  # nobody agreed to share the case history
    version = re.search(r'name="version" value="(\d+)"', page).group(1)
    for status in ("received", "accepted"):
        response = submit(
            receiver,
            f"/referrals/{referral_id}",
            f"/referrals/{referral_id}/status",
            status=status,
            version=version,
        )
        assert response.status_code == 302
        version = str(int(version) + 1)
    assert db.session.get(Referral, referral_id).status == "accepted"
    sent_page = text(sender.get(f"/referrals/{referral_id}"))
    assert 'id="status">Accepted<' in sent_page
    assert GIVEN_NAME in sent_page
    assert CASE_NOTE not in sent_page  # what nobody agreed to share, the form never sent


def test_a_form_sent_back_with_errors_keeps_what_was_typed(app):
    sender, _receiver, detox = two_partners(app)
    response = send_referral(sender, detox, **{"subject.age": "9"})
    assert response.status_code == 422
    page = text(response)
    assert f'value="{GIVEN_NAME}"' in page and f'value="{PHONE}"' in page
    assert 'id="subject.age-error"' in page
    assert db.session.query(Referral).count() == 0


def test_an_unknown_field_value_is_shown_at_its_field(app):
    sender, _receiver, detox = two_partners(app)
    page = text(send_referral(sender, detox, **{"consent.method": "telepathy"}))
    assert 'id="consent.method-error"' in page


def test_a_stale_version_is_refused_and_the_page_says_why(app):
    sender, receiver, detox = two_partners(app)
    referral_id = referral_id_of(send_referral(sender, detox))
    url = f"/referrals/{referral_id}"
    submit(receiver, url, f"{url}/status", status="received", version="1")
    response = submit(receiver, url, f"{url}/status", status="accepted", version="1")
    assert response.status_code == 302
    assert db.session.get(Referral, referral_id).status == "received"
    assert "reload" in text(receiver.get(url)).lower()


def test_only_allowed_actions_are_offered(app):
    sender, receiver, detox = two_partners(app)
    referral_id = referral_id_of(send_referral(sender, detox))
    sender_page = text(sender.get(f"/referrals/{referral_id}"))
    assert 'value="withdrawn"' in sender_page and 'value="accepted"' not in sender_page
    receiver_page = text(receiver.get(f"/referrals/{referral_id}"))
    assert 'value="received"' in receiver_page and 'value="withdrawn"' not in receiver_page
    assert "Withdraw consent" not in receiver_page


def test_the_receiver_cannot_make_the_senders_moves(app):
    sender, receiver, detox = two_partners(app)
    referral_id = referral_id_of(send_referral(sender, detox))
    url = f"/referrals/{referral_id}"
    # Even a form claiming to come from the page asking once more: the rules refuse.
    submit(receiver, url, f"{url}/status", status="withdrawn", version="1", confirmed="yes")
    assert db.session.get(Referral, referral_id).status == "sent"
    response = submit(receiver, url, f"{url}/consent/withdraw", confirmed="yes")
    assert db.session.get(Referral, referral_id).consent_status == "active"
    assert response.status_code == 302


def test_withdrawing_consent_hides_personal_data_from_the_receiver(app):
    sender, receiver, detox = two_partners(app)
    referral_id = referral_id_of(send_referral(sender, detox))
    url = f"/referrals/{referral_id}"
    confirm(sender, submit(sender, url, f"{url}/consent/withdraw"))
    page = text(receiver.get(url))
    assert GIVEN_NAME not in page and "Not shared (no consent)" in page


def test_other_organisations_get_a_404_page(app):
    sender, _receiver, detox = two_partners(app)
    referral_id = referral_id_of(send_referral(sender, detox))
    stranger, _ = signed_in(app, language="en")
    response = stranger.get(f"/referrals/{referral_id}")
    assert response.status_code == 404 and response.content_type.startswith("text/html")
    assert GIVEN_NAME not in text(response)


def test_posting_without_csrf_token_changes_nothing(app):
    sender, _receiver, detox = two_partners(app)
    response = sender.post(f"/services/{detox.id}/refer", data=REFERRAL_FORM)
    assert response.status_code == 403
    assert db.session.query(Referral).count() == 0


def _safe_house():
    service = make_service(make_org(), name="Safe House")
    add_location(service, "Girls shelter", "Street 99, house 7", confidential=True)
    return service


def test_focal_points_cannot_send_referrals_or_see_safe_house_addresses(app):
    service = _safe_house()
    focal, _ = signed_in(app, roles=("focal_point",), provinces=("17",), language="en")
    assert focal.get(f"/services/{service.id}/refer").status_code == 403
    page = text(focal.get(f"/services/{service.id}"))
    assert "Girls shelter" in page and "Street 99" not in page
    assert "/refer" not in page
    caseworker, _ = signed_in(app)
    assert "Street 99" in text(caseworker.get(f"/services/{service.id}"))


def test_pages_need_a_signed_in_user(client):
    response = client.get("/home")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_sending_twice_with_the_same_form_makes_one_referral(app):
    sender, _receiver, detox = two_partners(app)
    first = send_referral(sender, detox, idempotency_key="form-1")
    second = send_referral(sender, detox, idempotency_key="form-1")
    assert referral_id_of(first) == referral_id_of(second)
    assert db.session.query(Referral).count() == 1


def test_khmer_readers_get_khmer_labels_errors_and_dates(app):
    sender, receiver, detox = two_partners(app)
    sender.set_cookie("hub_lang", "km")
    page = text(send_referral(sender, detox, **{"consent.obtained_at": "2099-01-01T09:00"}))
    assert "ពេលវេលានៃការយល់ព្រមមិនអាចនៅអនាគតបានទេ" in page  # the consent rule's, in Khmer
    referral_id = referral_id_of(send_referral(sender, detox))
    receiver.set_cookie("hub_lang", "km")
    page = text(receiver.get(f"/referrals/{referral_id}"))
    assert "ឈ្មោះ និងថ្ងៃខែឆ្នាំកំណើត" in page  # "Name and date of birth"
    assert "Name and date" not in page and "Timeline" not in page


def test_a_child_outside_the_age_range_is_referred_with_a_reason(app):
    sender, receiver, detox = two_partners(app)
    refused = send_referral(sender, detox, **{"subject.age": "9"})
    assert refused.status_code == 422
    assert 'id="subject.age-error"' in text(refused)
    reason = "Only detox centre within a day of travel; the boy is 9 and dependent."
    sent = send_referral(
        sender, detox, **{"subject.age": "9", "eligibility_override.reason": reason}
    )
    assert sent.status_code == 302, text(sent)
    assert reason in text(receiver.get(f"/referrals/{referral_id_of(sent)}"))
