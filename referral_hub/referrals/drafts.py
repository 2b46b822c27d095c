"""Referral forms saved before sending: encrypted like referrals, read only by their author, and
deleted 30 days after they were started.

A draft keeps the form's fields as typed ({"subject.age": "16", "needs": [...]}), split into
parts: the facts, the consent, and one part per personal data category, each its own envelope.
"""

from datetime import timedelta

from .. import clock, crypto
from ..errors import NotFound
from ..extensions import db
from .models import PERSONAL_CATEGORIES, ReferralDraft

KEPT_FOR = timedelta(days=30)
PARTS = ("facts", "consent", *PERSONAL_CATEGORIES)


def _part_of(field):
    """Which part holds a field: "subject.contact.phone" is contact, "consent.method" consent."""
    names = field.split(".")
    if names[0] == "consent":
        return "consent"
    if names[0] == "subject" and len(names) > 2 and names[1] in PERSONAL_CATEGORIES:
        return names[1]
    return "facts"


def _context(draft_id, part):
    return f"draft:{draft_id}:{part}"


def expires_at(draft):
    return draft.created_at + KEPT_FOR


def _kept():
    """Drafts not yet past their 30 days (the purge may not have run yet)."""
    return ReferralDraft.created_at > clock.now() - KEPT_FOR


def _mine(principal, draft_id):
    """The principal's own draft, not past its days; else None, whoever else's it is."""
    return db.session.scalar(
        db.select(ReferralDraft).where(
            ReferralDraft.id == draft_id, ReferralDraft.user_id == principal.user_id, _kept()
        )
    )


def _own(principal, draft_id):
    """The principal's own draft; anyone else's, or one past its days, is not found."""
    draft = _mine(principal, draft_id)
    if draft is None:
        raise NotFound("No such draft.")
    return draft


def save_draft(principal, service_id, step, values, draft_id=None):
    """Keep the form as typed: the principal's draft `draft_id` replaced, or a new draft when
    there is none (or it has gone meanwhile: what was typed is never lost)."""
    draft = _mine(principal, draft_id) if draft_id else None
    if draft is None or draft.service_id != service_id:
        draft = ReferralDraft(user_id=principal.user_id, service_id=service_id, step=step)
        db.session.add(draft)
        db.session.flush()  # gives the id the envelopes are bound to
    draft.step = step
    parts = {part: {} for part in PARTS}
    for field, value in values.items():
        parts[_part_of(field)][field] = value
    for part, fields in parts.items():
        envelope = crypto.encrypt(fields, _context(draft.id, part)) if fields else None
        setattr(draft, f"{part}_data", envelope)
    db.session.flush()
    return draft


def read_draft(principal, draft_id):
    """The principal's draft and its fields, decrypted."""
    draft = _own(principal, draft_id)
    values = {}
    for part in PARTS:
        envelope = getattr(draft, f"{part}_data")
        if envelope:
            values.update(crypto.decrypt(envelope, _context(draft.id, part)))
    return draft, values


def list_drafts(principal, service_id=None):
    """The principal's drafts, newest first; of one service if given."""
    query = db.select(ReferralDraft).where(ReferralDraft.user_id == principal.user_id, _kept())
    if service_id:
        query = query.where(ReferralDraft.service_id == service_id)
    return list(db.session.scalars(query.order_by(ReferralDraft.updated_at.desc())))


def discard_draft(principal, draft_id):
    db.session.delete(_own(principal, draft_id))
    db.session.flush()


def sent(principal, draft_id):
    """The draft became a referral: it goes, if it is still there."""
    mine = ReferralDraft.id == draft_id, ReferralDraft.user_id == principal.user_id
    db.session.execute(db.delete(ReferralDraft).where(*mine))


def purge_expired_drafts():
    """Delete drafts started more than 30 days ago; returns how many."""
    old = ReferralDraft.created_at <= clock.now() - KEPT_FOR
    return db.session.execute(db.delete(ReferralDraft).where(old)).rowcount


def rotate_data_keys():
    """Re-encrypt drafts under the current key; returns how many values changed."""
    current = crypto.current_key_id()
    updates = []
    for draft in db.session.scalars(db.select(ReferralDraft)):
        values = {}
        for part in PARTS:
            envelope = getattr(draft, f"{part}_data")
            if envelope and crypto.key_id_of(envelope) != current:
                value = crypto.decrypt(envelope, _context(draft.id, part))
                values[f"{part}_data"] = crypto.encrypt(value, _context(draft.id, part))
        if values:
            updates.append((draft.id, values))
    for draft_id, values in updates:  # updated_at stays: the author changed nothing
        keep = {"updated_at": ReferralDraft.updated_at}
        db.session.execute(
            db.update(ReferralDraft).where(ReferralDraft.id == draft_id).values(**values, **keep)
        )
    return sum(len(values) for _, values in updates)
