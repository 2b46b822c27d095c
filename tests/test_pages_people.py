"""People to call on the pages: the sender, the assignee, the service, and whom to ask when the
directory has no number; the cards of the home page and finding a referral by its reference."""

import re

import pytest

from referral_hub.audit.models import PendingAuditEntry
from referral_hub.auth.models import User
from referral_hub.directory import service as directory
from referral_hub.extensions import db
from referral_hub.referrals import service as referral_service
from referral_hub.referrals.models import Referral

from .factories import make_org, make_service, make_user, sign_in
from .pages import confirm, referral_id_of, send_referral, signed_in, submit, text, two_partners
from .referral_fixtures import FAMILY_NAME, GIVEN_NAME, client_party, referral_body, send


def _sent(app):
    """A referral from a caseworker whose profile has a phone to the detox service."""
    sender, receiver, detox = two_partners(app)
    submit(sender, "/account", name="Sophea Chan", phone="+855 12 345 678")
    referral_id = referral_id_of(send_referral(sender, detox))
    return sender, receiver, detox, db.session.get(Referral, referral_id)


def _colleague_of(organization, roles=("caseworker",), name="Dara Keo", phone="+855 97 111 222"):
    """A user with a name and a phone, as their profile gives them."""
    user = make_user(organization, roles=roles)
    user.name, user.phone = name, phone
    db.session.commit()
    return user


def _organization_of(referral, side):
    return directory.get_organization(getattr(referral, f"{side}_organization_id"))


def test_the_referral_names_the_sending_caseworker_with_links_to_call_and_write(app):
    _sender, receiver, _detox, referral = _sent(app)
    sender_user = db.session.get(User, referral.created_by.removeprefix("user:"))
    page = text(receiver.get(f"/referrals/{referral.id}"))
    people = page.split('id="sender-contact"')[1].split("</dd>")[0]
    assert "Sophea Chan" in people
    assert '<a href="tel:+85512345678">+855 12 345 678</a>' in people
    assert f'<a href="mailto:{sender_user.email}">' in people


def test_a_caseworker_without_a_phone_is_named_and_the_page_says_so(app):
    sender, receiver, detox = two_partners(app)
    referral_id = referral_id_of(send_referral(sender, detox))
    people = text(receiver.get(f"/referrals/{referral_id}")).split('id="sender-contact"')[1]
    assert "No phone in their profile yet." in people.split("</dd>")[0]


def test_the_profile_page_saves_a_phone_and_refuses_letters(app):
    browser, user = signed_in(app, language="en")
    response = submit(browser, "/account", name="Sophea", phone="call me maybe")
    assert response.status_code == 422
    assert 'id="phone-error"' in text(response) and 'value="call me maybe"' in text(response)
    assert submit(browser, "/account", name="Sophea", phone="012 345 678").status_code == 302
    assert db.session.get(User, user.id).phone == "012 345 678"
    entries = db.session.scalars(db.select(PendingAuditEntry).filter_by(action="user.updated"))
    assert [e.details for e in entries][-1] == {"fields": ["name", "phone"]}


def test_an_admin_gives_a_colleague_a_phone(app):
    admin, me = signed_in(app, ["org_admin"], language="en")
    colleague = make_user(directory.get_organization(me.organization_id))
    page = f"/admin/users/{colleague.id}"
    response = submit(admin, page, f"{page}/contact", name="Dara", phone="+855 97 111 222")
    assert response.status_code == 302
    assert db.session.get(User, colleague.id).phone == "+855 97 111 222"
    assert '<a href="tel:+85597111222">' in text(admin.get(page))
    invited = submit(
        admin,
        "/admin/users",
        email="new.caseworker@example.org",
        name="New",
        phone="+855 10 000 000",
        roles="caseworker",
    )
    assert invited.status_code == 200
    new = db.session.scalar(db.select(User).filter_by(email="new.caseworker@example.org"))
    assert new.phone == "+855 10 000 000"


def test_the_receiver_assigns_and_reassigns_on_the_page_and_the_sender_sees_whom_to_call(app):
    sender, receiver, _detox, referral = _sent(app)
    receiver_org = _organization_of(referral, "receiver")
    dara = _colleague_of(receiver_org)
    vanna = _colleague_of(receiver_org, name="Vanna Sok", phone="+855 96 333 444")
    url = f"/referrals/{referral.id}"
    assert 'id="assign"' not in text(sender.get(url))
    page = text(receiver.get(url))
    assert "No one yet" in page and f'value="{dara.id}"' in page

    assert submit(receiver, url, f"{url}/assignment", user_id=dara.id).status_code == 302
    assert "Assigned to Dara Keo." in text(receiver.get(url))
    seen = text(sender.get(url)).split('id="assignee-contact"')[1].split("</dd>")[0]
    assert "Dara Keo" in seen and '<a href="tel:+85597111222">' in seen

    page = text(receiver.get(url))
    assert "Reassign to" in page and f'<option value="{dara.id}" selected>' in page
    assert submit(receiver, url, f"{url}/assignment", user_id=vanna.id).status_code == 302
    assert db.session.get(Referral, referral.id).assigned_to_user_id == vanna.id
    assert "Vanna Sok" in text(sender.get(url)).split('id="assignee-contact"')[1]


def test_the_page_refuses_to_assign_someone_of_another_organisation(app):
    _sender, receiver, _detox, referral = _sent(app)
    outsider = make_user(make_org())
    url = f"/referrals/{referral.id}"
    assert submit(receiver, url, f"{url}/assignment", user_id=outsider.id).status_code == 302
    assert db.session.get(Referral, referral.id).assigned_to_user_id is None
    assert "Choose a caseworker of the receiving organisation." in text(receiver.get(url))
    empty = submit(receiver, url, f"{url}/assignment", user_id="")
    assert empty.status_code == 302
    assert "Choose a caseworker before you save." in text(receiver.get(url))


def test_the_sender_cannot_assign_through_the_page(app):
    sender, _receiver, _detox, referral = _sent(app)
    colleague = _colleague_of(_organization_of(referral, "sender"))
    url = f"/referrals/{referral.id}"
    submit(sender, url, f"{url}/assignment", user_id=colleague.id)
    assert db.session.get(Referral, referral.id).assigned_to_user_id is None


def test_home_lists_only_the_referrals_assigned_to_me_when_asked(app):
    sender, receiver, detox = two_partners(app)
    receiver_org = directory.get_organization(detox.organization_id)
    mine_id = referral_id_of(send_referral(sender, detox))
    other_id = referral_id_of(send_referral(sender, detox, idempotency_key="second"))
    me = _colleague_of(receiver_org, name="Me Myself")
    browser = app.test_client()
    sign_in(browser, me.email)
    browser.set_cookie("hub_lang", "en")
    url = f"/referrals/{mine_id}"
    submit(receiver, url, f"{url}/assignment", user_id=me.id)

    everything = text(browser.get("/home"))
    assert mine_id in everything and other_id in everything
    assert 'href="/home?assigned=me"' in everything
    mine = text(browser.get("/home?assigned=me"))
    assert mine_id in mine and other_id not in mine
    assert "Referrals assigned to you" in mine and 'id="sent"' not in mine
    assert other_id not in text(receiver.get("/home?assigned=me"))
    for referral_id in (mine_id, other_id):  # accepted: from awaiting an answer to in hand
        db.session.get(Referral, referral_id).status = "accepted"
    db.session.commit()
    mine = text(browser.get("/home?assigned=me"))
    assert mine_id in mine and other_id not in mine


def test_a_service_without_phone_or_email_says_whom_to_ask(app):
    coordinator_org = make_org("Network Secretariat")
    _colleague_of(coordinator_org, roles=("coordinator",), name="Bopha", phone="+855 23 999 000")
    owner = make_org()
    silent = make_service(owner, name="Silent Shelter")
    browser, _ = signed_in(app, language="en")
    page = text(browser.get(f"/services/{silent.id}"))
    assert "The directory has no phone or email for this service yet." in page
    assert "Bopha" in page and '<a href="tel:+85523999000">' in page

    listed = make_service(owner, name="Listed Shelter", phones=[{"number": "012 000 111"}])
    assert '<a href="tel:012000111">012 000 111</a>' in text(browser.get(f"/services/{listed.id}"))


def test_on_a_referral_the_service_falls_back_to_its_organisation_then_the_coordinator(app):
    coordinator_org = make_org("Network Secretariat")
    _colleague_of(coordinator_org, roles=("coordinator",), name="Bopha", phone="+855 23 999 000")
    _sender, receiver, _detox, referral = _sent(app)
    url = f"/referrals/{referral.id}"
    desk = text(receiver.get(url)).split('id="service-contact"')[1].split("</dd>")[0]
    assert "Ask the network coordinator" in desk and '<a href="tel:+85523999000">' in desk

    coordinator, _ = signed_in(app, ["coordinator"], organization=coordinator_org, language="en")
    page = f"/curation/organizations/{referral.receiver_organization_id}"
    organization = _organization_of(referral, "receiver")
    fields = {"name": organization.name, "status": "active", "email": "desk@waterlily.example.org"}
    saved = submit(coordinator, page, **fields, phone="063 111 222, 012 333 444")
    assert saved.status_code == 302, text(saved)
    assert 'value="063 111 222, 012 333 444"' in text(coordinator.get(page))
    desk = text(receiver.get(url)).split('id="service-contact"')[1].split("</dd>")[0]
    assert '<a href="tel:063111222">' in desk and '<a href="tel:012333444">' in desk
    assert '<a href="mailto:desk@waterlily.example.org">' in desk
    assert "Ask the network coordinator" not in desk


def test_cards_show_the_reference_service_date_and_what_the_viewer_may_see_of_the_child(app):
    sender, receiver, detox = two_partners(app)
    referral_id = referral_id_of(send_referral(sender, detox))
    reference = db.session.get(Referral, referral_id).reference
    for browser, listing in ((sender, "sent-list"), (receiver, "awaiting-list")):
        card = text(browser.get("/home")).split(f'id="{listing}"')[1].split("</li>")[0]
        assert reference in card and "Water Lily Detox" in card
        assert f"{GIVEN_NAME[0]}. {FAMILY_NAME[0]}." in card  # identity was consented to
        assert "Male" in card and "age 16" in card
        assert re.search(r"Sent [^·<]*\d{4} ·", card), card  # the date it was sent
        assert GIVEN_NAME not in card and FAMILY_NAME not in card
    reads = db.session.scalars(
        db.select(PendingAuditEntry).filter_by(action="referral.read", resource_id=referral_id)
    ).all()
    assert reads and all(entry.details == {"categories": ["identity"]} for entry in reads)


def test_cards_show_no_initials_without_consent_to_identity(app):
    sender, receiver, detox = two_partners(app)
    no_identity = {
        "consent.categories": ["contact"],
        "subject.identity.given_name": "",
        "subject.identity.family_name": "",
    }
    referral_id = referral_id_of(send_referral(sender, detox, **no_identity))
    card = text(receiver.get("/home")).split('id="awaiting-list"')[1].split("</li>")[0]
    assert "Male" in card and "age 16" in card and "<strong>" not in card

    consented_id = referral_id_of(send_referral(sender, detox, idempotency_key="two"))
    home = text(receiver.get("/home"))
    assert home.index(f"/referrals/{referral_id}") < home.index(f"/referrals/{consented_id}")
    card = home.split(f"/referrals/{consented_id}")[1].split("</li>")[0]
    assert f"{GIVEN_NAME[0]}. {FAMILY_NAME[0]}." in card  # after a card that shows none
    url = f"/referrals/{consented_id}"
    confirm(sender, submit(sender, url, f"{url}/consent/withdraw"))  # asks once more
    home = text(receiver.get("/home"))
    card = home.split(f"/referrals/{consented_id}")[1].split("</li>")[0]
    assert f"{GIVEN_NAME[0]}. {FAMILY_NAME[0]}." not in card
    assert referral_id in home


def test_the_referral_page_shows_the_reference_and_home_finds_it(app):
    sender, receiver, detox = two_partners(app)
    referral_id = referral_id_of(send_referral(sender, detox))
    reference = db.session.get(Referral, referral_id).reference
    page = text(receiver.get(f"/referrals/{referral_id}"))
    assert f'<strong class="reference" id="reference">{reference}</strong>' in page
    for browser in (sender, receiver):
        found = browser.get("/home", query_string={"reference": f" {reference.lower()} "})
        assert found.status_code == 302
        assert found.headers["Location"].endswith(f"/referrals/{referral_id}")
    stranger, _ = signed_in(app, language="en")
    missing = stranger.get("/home", query_string={"reference": reference})
    assert missing.status_code == 404 and reference in text(missing)
    assert referral_id not in text(missing)
    assert stranger.get("/home", query_string={"reference": "not one"}).status_code == 404


def test_a_referral_sent_by_a_case_system_says_so_and_gives_the_organisations_numbers(app, client):
    sender_org, receiver_org = make_org(), make_org()
    detox = make_service(receiver_org, categories=["detox"], minimum_age=10, maximum_age=18)
    coordinator, _ = signed_in(app, ["coordinator"], language="en")
    page = f"/curation/organizations/{sender_org.id}"
    submit(coordinator, page, name=sender_org.name, status="active", phone="023 555 666")
    response = send(client, client_party(client, sender_org), referral_body(detox.id))
    receiver, _ = signed_in(app, organization=receiver_org, language="en")
    page = text(receiver.get(f"/referrals/{response.get_json()['id']}"))
    sent_by = page.split('id="sender-contact"')[1].split("</dd>")[0]
    assert "case system, not by a person." in sent_by
    assert sender_org.name in sent_by and '<a href="tel:023555666">' in sent_by


def test_a_coordinator_finds_any_referral_by_reference_from_the_overdue_page(app):
    sender, _receiver, detox = two_partners(app)
    _earlier, referral_id = (referral_id_of(send_referral(sender, detox)) for _ in range(2))
    reference = db.session.get(Referral, referral_id).reference
    coordinator, _ = signed_in(app, ["coordinator"], language="en")
    assert 'name="reference"' in text(coordinator.get("/network/overdue"))
    found = coordinator.get("/home", query_string={"reference": reference})
    assert found.headers["Location"].endswith(f"/referrals/{referral_id}")


@pytest.mark.parametrize(
    "name, initial",
    [
        ("Sophearith", "S."),
        ("  chanthavong ", "c."),
        ("", ""),
        ("   ", ""),
        (None, ""),
        ("\u179f\u17bb\u1797\u17b6", "\u179f\u17bb."),  # a vowel sign on the first consonant
        ("\u179f\u17bb", "\u179f\u17bb."),  # a name that ends with its mark
        ("\u179f\u17d2\u179a\u17b8\u1798\u17bb\u17c6", "\u179f\u17d2\u179a\u17b8."),  # coeng, vowel
        ("\u1781\u17d2\u1798\u17c2\u179a", "\u1781\u17d2\u1798\u17c2."),  # coeng, then a vowel
        ("\u179f\u17d2\u179a\u179f\u17cb", "\u179f\u17d2\u179a."),  # coeng, then a consonant
    ],
)
def test_an_initial_keeps_the_marks_written_on_its_letter(name, initial):
    """A Khmer initial is its consonant with the subscript consonant and vowel signs on it."""
    assert referral_service._initial(name) == initial
