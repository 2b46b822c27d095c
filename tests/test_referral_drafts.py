"""Drafts of the referral form: resumed by their author alone, encrypted at rest, deleted 30
days after they were started."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from referral_hub import clock, crypto, jobs
from referral_hub.extensions import db
from referral_hub.referrals import drafts
from referral_hub.referrals.models import Referral, ReferralDraft

from .pages import REFERRAL_FORM, save_draft, signed_in, submit, text, two_partners
from .referral_fixtures import FAMILY_NAME, GIVEN_NAME, HEALTH_NOTE, PHONE

DAY = 24 * 3600
EVERY_CATEGORY = {
    "consent.categories": ["identity", "contact", "health", "case_history"],
    "subject.health.notes": HEALTH_NOTE,
    "consent.justification": "Only the guardian knows; she asked us to refer today",
}


def _drafts():
    return db.session.scalar(db.select(db.func.count()).select_from(ReferralDraft))


def test_a_draft_is_saved_listed_resumed_and_gone_once_sent(app):
    sender, _receiver, detox = two_partners(app)
    draft_id = save_draft(sender, detox)
    page = text(sender.get(f"/drafts/{draft_id}"))
    assert f'value="{GIVEN_NAME}"' in page and f'value="{PHONE}"' in page
    assert 'name="subject.sex"' in page  # the step it was saved at
    for listing in (sender.get("/home"), sender.get(f"/services/{detox.id}/refer")):
        assert f"/drafts/{draft_id}" in text(listing).split('id="drafts-list"')[1]

    fields = {**REFERRAL_FORM, "draft_id": draft_id, "subject.age": "17"}
    sent = submit(sender, f"/drafts/{draft_id}", f"/services/{detox.id}/refer", **fields)
    assert sent.status_code == 302 and "/referrals/" in sent.headers["Location"]
    assert db.session.scalar(db.select(Referral.subject_age)) == 17
    assert _drafts() == 0
    assert sender.get(f"/drafts/{draft_id}").status_code == 404


def test_saving_again_replaces_the_draft_and_a_draft_may_be_deleted(app):
    sender, _receiver, detox = two_partners(app)
    draft_id = save_draft(sender, detox)
    assert save_draft(sender, detox, draft_id=draft_id, **{"subject.age": "15"}) == draft_id
    assert 'value="15"' in text(sender.get(f"/drafts/{draft_id}"))
    assert _drafts() == 1
    response = submit(sender, f"/drafts/{draft_id}", f"/drafts/{draft_id}/discard")
    assert response.status_code == 302 and _drafts() == 0


def test_a_draft_is_its_authors_alone(app):
    sender, _receiver, detox = two_partners(app)
    draft_id = save_draft(sender, detox)
    colleague, _user = signed_in(app, organization=detox.organization)
    stranger, _user = signed_in(app)
    for other in (colleague, stranger):
        response = other.get(f"/drafts/{draft_id}")
        assert response.status_code == 404 and GIVEN_NAME not in text(response)
        assert f"/drafts/{draft_id}" not in text(other.get("/home"))
        discard = submit(other, "/home", f"/drafts/{draft_id}/discard")
        assert discard.status_code == 404
    # Saving or sending with someone else's draft leaves it be: a new draft, a new referral.
    assert save_draft(colleague, detox, draft_id=draft_id) != draft_id
    sent = submit(
        colleague, f"/services/{detox.id}/refer", **{**REFERRAL_FORM, "draft_id": draft_id}
    )
    assert sent.status_code == 302
    _draft, values = drafts.read_draft(_principal_of(sender), draft_id)
    assert values["subject.identity.given_name"] == GIVEN_NAME  # untouched


def _principal_of(browser):
    from referral_hub.auth.models import User
    from referral_hub.web.session import principal_of

    with browser.session_transaction() as session:
        return principal_of(db.session.get(User, session["user_id"]))


def test_a_draft_is_deleted_30_days_after_it_was_started(app, moved_clock):
    sender, _receiver, detox = two_partners(app)
    draft_id = save_draft(sender, detox)
    moved_clock(29 * DAY)
    save_draft(sender, detox, draft_id=draft_id)  # saving again does not extend it
    moved_clock(30 * DAY - 60)
    jobs.purge_expired_drafts()
    assert sender.get(f"/drafts/{draft_id}").status_code == 200
    moved_clock(30 * DAY + 1)
    assert sender.get(f"/drafts/{draft_id}").status_code == 404  # even before the purge
    assert f"/drafts/{draft_id}" not in text(sender.get("/home"))
    jobs.purge_expired_drafts()
    assert _drafts() == 0


def test_a_drafts_personal_values_are_not_in_the_database_in_clear(app):
    sender, _receiver, detox = two_partners(app)
    draft_id = save_draft(sender, detox, **EVERY_CATEGORY)
    db.session.expire_all()
    row = db.session.execute(sa.text("SELECT * FROM referral_drafts")).mappings().one()
    stored = " ".join(str(value) for value in row.values())
    for value in (GIVEN_NAME, FAMILY_NAME, PHONE, HEALTH_NOTE, "guardian", "Only the guardian"):
        assert value not in stored
    for part in drafts.PARTS:
        assert crypto.key_id_of(row[f"{part}_data"])  # every part is an envelope
    # Each envelope opens only as the part of the draft it was written for.
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(row["identity_data"], f"draft:{draft_id}:contact")


def test_rotating_the_data_key_re_encrypts_drafts(app):
    sender, _receiver, detox = two_partners(app)
    draft_id = save_draft(sender, detox)
    keys, old_id = app.extensions["hub_data_keys"], app.config["DATA_ENCRYPTION_KEY_ID"]
    app.extensions["hub_data_keys"] = {**keys, "k2": b"2" * 32}
    app.config["DATA_ENCRYPTION_KEY_ID"] = "k2"
    try:
        assert drafts.rotate_data_keys() == 4  # facts, consent, identity, contact
        db.session.commit()
        assert drafts.rotate_data_keys() == 0
        app.extensions["hub_data_keys"] = {"k2": b"2" * 32}
        assert f'value="{GIVEN_NAME}"' in text(sender.get(f"/drafts/{draft_id}"))
    finally:
        app.extensions["hub_data_keys"], app.config["DATA_ENCRYPTION_KEY_ID"] = keys, old_id


def test_the_purge_keeps_drafts_younger_than_30_days(app, moved_clock):
    sender, _receiver, detox = two_partners(app)
    save_draft(sender, detox)
    moved_clock(10 * DAY)
    save_draft(sender, detox)
    moved_clock(35 * DAY)
    assert drafts.purge_expired_drafts() == 1
    assert clock.now() - db.session.scalar(db.select(ReferralDraft.created_at)) < timedelta(30)


def test_a_page_left_open_past_the_30_days_still_saves_and_sends(app, moved_clock):
    sender, _receiver, detox = two_partners(app)
    draft_id = save_draft(sender, detox)
    moved_clock(31 * DAY)
    assert save_draft(sender, detox, draft_id=draft_id) != draft_id  # a new draft, typing kept
    fields = {**REFERRAL_FORM, "draft_id": draft_id}
    sent = submit(sender, f"/services/{detox.id}/refer", **fields)
    assert sent.status_code == 302 and "/referrals/" in sent.headers["Location"]
