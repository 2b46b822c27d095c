"""Rules for referrals: consent, eligibility, the state machine, deadlines and erasure."""

import hashlib
import json
import unicodedata
from datetime import datetime, timedelta
from types import SimpleNamespace

from flask import current_app
from sqlalchemy import case, or_
from sqlalchemy.orm.exc import StaleDataError

from .. import clock, crypto, persistence
from ..audit import service as audit
from ..auth.models import Membership, User
from ..auth.principal import actor
from ..callbacks import outbox
from ..db_types import new_id
from ..directory import reference
from ..directory import service as directory
from ..directory.models import Service
from ..errors import Conflict, Forbidden, InvalidInput, NotFound, Problem
from ..extensions import db
from ..federation import inbound
from ..federation import outbox as forwards
from ..federation.models import Forward, Peer
from ..messages import N_
from ..notifications import service as notifications
from ..pagination import paginate
from ..rows import read_rows
from . import references, visibility
from .models import (
    DECLINE_REASONS,
    OPEN_STATUSES,
    PERSONAL_CATEGORIES,
    UNANSWERED_STATUSES,
    Escalation,
    Referral,
    ReferralEvent,
    data_attribute,
)

# (from, to) -> who may make the change
TRANSITIONS = {
    ("sent", "received"): visibility.RECEIVER,
    ("received", "accepted"): visibility.RECEIVER,
    ("received", "declined"): visibility.RECEIVER,
    ("accepted", "in_progress"): visibility.RECEIVER,
    ("in_progress", "completed"): visibility.RECEIVER,
    ("sent", "withdrawn"): visibility.SENDER,
    ("received", "withdrawn"): visibility.SENDER,
    ("accepted", "withdrawn"): visibility.SENDER,
    ("in_progress", "withdrawn"): visibility.SENDER,
}


class PreconditionFailed(Problem):
    status, slug, title = 412, "stale-version", "The referral has changed"


class PreconditionRequired(Problem):
    status, slug, title = 428, "version-required", "Version required"


def _field_error(field, message, problem=InvalidInput):
    return problem(message, errors=[{"field": field, "message": message}])


# Deadlines


def answer_deadline(urgency, start):
    """When the receiver must have answered: hours for urgent referrals, business days otherwise."""
    deadline = current_app.config["REFERRAL_DEADLINES"][urgency]
    if isinstance(deadline, timedelta):
        return start + deadline
    moment, days = start, deadline
    while days:
        moment += timedelta(days=1)
        if moment.weekday() < 5:
            days -= 1
    return moment


# Creating


def _digest(data):
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _subject_age(subject, today):
    return subject["age"] if "age" in subject else today.year - subject["birth_year"]


def _eligibility_problems(service, subject, today):
    problems = []
    age = _subject_age(subject, today)
    if service.minimum_age is not None and age < service.minimum_age:
        problems.append(
            {
                "field": "subject.age",
                "message": N_("The service starts at %(age)s.", age=service.minimum_age),
            }
        )
    if service.maximum_age is not None and age > service.maximum_age:
        problems.append(
            {
                "field": "subject.age",
                "message": N_("The service ends at %(age)s.", age=service.maximum_age),
            }
        )
    if service.eligibility_sex and subject["sex"] != service.eligibility_sex:
        problems.append(
            {
                "field": "subject.sex",
                "message": N_("The service is for %(sex)s subjects.", sex=service.eligibility_sex),
            }
        )
    return problems


def _check_consent(consent, urgency, subject, moment):
    if consent["given_by"] == "best_interests" and urgency != "emergency":
        raise _field_error(
            "consent.given_by",
            "Sharing in the child's best interests without consent is only for emergencies.",
        )
    if consent["obtained_at"] > moment + timedelta(minutes=5):
        raise _field_error("consent.obtained_at", "Consent cannot be obtained in the future.")
    if consent["expires_at"] is not None and consent["expires_at"] <= moment:
        raise _field_error("consent.expires_at", "This consent has expired.")
    if "identity" in subject and "identity" not in consent["categories"]:
        raise _field_error(
            "consent.categories", "Identity data is sent but the consent does not cover identity."
        )


def _check_references(data):
    unknown = reference.unknown_categories(data["needs"])
    if unknown:
        raise _field_error("needs", N_("Unknown categories: %(codes)s", codes=unknown))
    subject = data["subject"]
    for field in ("province", "district"):
        if field in subject and subject[field] not in reference.areas_by_code():
            raise _field_error(
                f"subject.{field}", N_("Unknown area code %(code)s.", code=subject[field])
            )


def create_referral(principal, data, idempotency_key=None):
    """Send a referral; the same Idempotency-Key and body return the first referral again
    (found only when the INSERT finds the key taken, or the body no longer passes the checks)."""
    digest = _digest(data)
    try:
        referral = _new_referral(principal, data, idempotency_key, digest)
    except (InvalidInput, Conflict):
        if idempotency_key and (earlier := _sent_with(principal, idempotency_key, digest)):
            return earlier, False
        raise
    referral.reference = references.next_reference(principal.organization_id)
    inserted = persistence.insert_unless_taken(
        referral, ["sender_organization_id", "idempotency_key"]
    )
    if inserted is None:
        db.session.rollback()  # the reference's number is given back
        return _sent_with(principal, idempotency_key, digest), False
    _event(inserted, "referral.created", principal, None, "sent")
    if inserted.forwarding:
        forwards.enqueue(inserted, "create")
    audit.record(
        actor(principal),
        principal.organization_id,
        "referral.created",
        "referral",
        inserted.id,
        {"categories": inserted.categories_sent, "urgency": inserted.urgency},
    )
    db.session.flush()
    return inserted, True


def _sent_with(principal, idempotency_key, digest):
    """The referral the sender sent earlier with this key, if any; a 422 if it was sent with
    another body."""
    earlier = db.session.scalar(
        db.select(Referral).filter_by(
            sender_organization_id=principal.organization_id, idempotency_key=idempotency_key
        )
    )
    if earlier is not None and earlier.request_digest != digest:
        raise _field_error("Idempotency-Key", "This key was used for another request body.")
    return earlier


def _new_referral(principal, data, idempotency_key, digest):
    """The referral the request describes, checked and encrypted, not yet written."""
    moment = clock.now()
    service = directory.service_facts(str(data["service_id"]))
    if service is None:
        raise _field_error("service_id", "No such service.")
    peer = inbound.peer_of(principal)
    if data.get("referrer") is not None and peer is None:
        raise _field_error("referrer", "Only a peer hub names who referred at its end.")
    if peer is not None and service.peer_id is not None:
        raise _field_error("service_id", "Not a service of this network.", Conflict)
    if service.status != "active" or service.organization_status != "active":
        raise _field_error("service_id", "This service is not active.", Conflict)
    if not service.accepting_referrals:
        raise _field_error("service_id", "This service is not accepting referrals now.", Conflict)
    _check_references(data)
    subject, consent = data["subject"], data["consent"]
    _check_consent(consent, data["urgency"], subject, moment)
    override = data.get("eligibility_override")
    problems = _eligibility_problems(service, subject, moment.date())
    if problems and not override:
        raise InvalidInput(
            "The subject is outside the service's eligibility; to refer anyway, send "
            "eligibility_override with a reason.",
            errors=problems,
        )

    referral = Referral(
        id=new_id(),
        version=1,
        urgency=data["urgency"],
        needs=sorted(set(data["needs"])),
        service_id=service.id,
        sender_organization_id=principal.organization_id,
        receiver_organization_id=service.organization_id,
        created_by=actor(principal),
        subject_sex=subject["sex"],
        subject_birth_year=subject.get("birth_year"),
        subject_age=subject.get("age"),
        subject_province=subject["province"],
        subject_district=subject.get("district"),
        consent_given_by=consent["given_by"],
        consent_method=consent["method"],
        consent_obtained_at=consent["obtained_at"],
        consent_categories=sorted(set(consent["categories"])),
        consent_share_identity_with_government=consent["share_identity_with_government"],
        consent_expires_at=consent["expires_at"],
        deadline_at=answer_deadline(data["urgency"], moment),
        idempotency_key=idempotency_key,
        request_digest=digest,
        created_at=moment,
    )
    if peer is not None:
        referral.peer_id, referral.referrer = peer.id, inbound.referrer(peer, data.get("referrer"))
    elif service.peer_id is not None:  # the service is another network's: forward it there
        referral.peer_id, referral.forwarding = service.peer_id, "pending"
    for category in PERSONAL_CATEGORIES:
        if subject.get(category):
            value = json.loads(json.dumps(subject[category], default=str))
            setattr(
                referral,
                data_attribute(category),
                crypto.encrypt(value, f"{referral.id}:{category}"),
            )
    if consent.get("justification"):
        referral.consent_justification_data = crypto.encrypt(
            consent["justification"], f"{referral.id}:justification"
        )
    if problems:
        referral.eligibility_override_data = crypto.encrypt(
            override["reason"], f"{referral.id}:override"
        )
    return referral


def _event(referral, kind, principal, from_status, to_status, reason=None, outcome=None, by=None):
    """Record a step of the timeline and, in the same transaction, its callbacks and the
    notifications of the people it concerns. `by` names
    an actor who is no principal here (a peer hub); it acts for the referral's receiver."""
    event = ReferralEvent(
        referral_id=referral.id,
        type=kind,
        from_status=from_status,
        to_status=to_status,
        version=referral.version,
        actor=by or actor(principal),
        organization_id=(
            referral.receiver_organization_id if by else getattr(principal, "organization_id", None)
        ),
        reason=reason,
        outcome=outcome,
    )
    persistence.insert(event)
    outbox.enqueue(event, referral)
    notifications.on_referral_event(event, referral)


# Reading


def _visible(principal, referral_id):
    referral = db.session.get(Referral, referral_id)
    standing = visibility.party(principal, referral) if referral else None
    if standing is None:
        raise NotFound("No such referral.")
    return referral, standing


def read_referral(principal, referral_id, audit_read=True):
    """The referral as this principal may see it; a read of personal data is audited, unless
    it answers a change whose own entry says what the answer shows."""
    referral, standing = _visible(principal, referral_id)
    categories = visibility.visible_categories(standing, referral)
    personal = {
        c: crypto.decrypt(getattr(referral, data_attribute(c)), f"{referral.id}:{c}")
        for c in categories
    }
    if categories and audit_read:
        _audit_read(principal, referral, categories)
        db.session.flush()
    return referral, standing, personal, _extras(referral, standing)


def _audit_read(principal, referral, categories):
    audit.record(
        actor(principal),
        principal.organization_id,
        "referral.read",
        "referral",
        referral.id,
        {"categories": categories},
    )


KHMER_COENG = "\u17d2"


def _initial(name):
    """A name's first letter, with the marks written on it (a Khmer consonant's vowel sign)."""
    name = (name or "").strip()
    if not name:
        return ""
    end = 1
    while end < len(name) and unicodedata.category(name[end]).startswith("M"):
        end += 2 if name[end] == KHMER_COENG else 1  # the coeng brings a consonant below
    return name[:end] + "."


def initials(principal, referrals):
    """{referral id: the child's initials} for the cards of a list, only where the principal
    may see the child's identity now; each such read of identity data is audited."""
    found = {}
    for referral in referrals:
        standing = visibility.party(principal, referral)
        if "identity" not in visibility.visible_categories(standing, referral):
            continue
        identity = crypto.decrypt(referral.identity_data, f"{referral.id}:identity")
        letters = " ".join(
            filter(None, (_initial(identity.get(k)) for k in ("given_name", "family_name")))
        )
        if letters:
            found[referral.id] = letters
            _audit_read(principal, referral, ["identity"])
    db.session.flush()
    return found


# Free texts beside the categories: (column, encryption context)
EXTRA_TEXTS = {
    "justification": ("consent_justification_data", "justification"),
    "eligibility_override": ("eligibility_override_data", "override"),
}


def _extras(referral, standing):
    """The sender sees the justification; both parties see why eligibility was overridden."""
    if referral.erased_at is not None:
        return {}
    if standing == visibility.SENDER:
        names = ("justification", "eligibility_override")
    elif standing == visibility.RECEIVER and visibility.consent_in_force(referral):
        names = ("eligibility_override",)
    else:
        names = ()
    found = {}
    for name in names:
        column, context = EXTRA_TEXTS[name]
        if getattr(referral, column):
            found[name] = crypto.decrypt(getattr(referral, column), f"{referral.id}:{context}")
    return found


def list_referrals(principal, filters, page_args):
    """Referrals the principal may know of, oldest first; lists carry no personal data."""
    return _listed(db.select(Referral), principal, filters, page_args)


# What presentation.present shows of a referral in a list, as columns: loading 50 ORM referrals
# with their personal data envelopes, then each one's peer and forwarding steps, was most of a
# list's time. Whether each category was sent is all a list needs of the envelopes.
NOT_SUMMARISED = {
    *(data_attribute(c) for c in PERSONAL_CATEGORIES),
    "consent_justification_data",
    "eligibility_override_data",
    # and what presentation.present does not show
    "created_by",
    "escalated_at",
    "remote_referral_id",
    "forwarded_at",
    "remote_events_seen",
    "idempotency_key",
    "request_digest",
}
SUMMARY_COLUMNS = [column for column in Referral.__table__.c if column.key not in NOT_SUMMARISED]
# Prepared once per connection (prepared.py): parsing it again for each list was about 0.3 ms
# of the database's 1 ms.
SUMMARIES = (
    db.select(
        *SUMMARY_COLUMNS,
        *[
            getattr(Referral, data_attribute(c)).is_not(None).label(f"sent_{c}")
            for c in PERSONAL_CATEGORIES
        ],
        Peer.name.label("peer_name"),
        Peer.status.label("peer_status"),
    )
    .outerjoin(Peer, Peer.id == Referral.peer_id)
    .execution_options(prepared=True)
)
STEPS = db.select(
    Forward.referral_id,
    Forward.action,
    Forward.status,
    Forward.created_at,
    Forward.done_at,
    Forward.last_error,
).order_by(Forward.id)


def list_summaries(principal, filters, page_args):
    """list_referrals for the API: plain objects with what presentation.present reads of a
    referral, from one statement (two when a referral on the page is forwarded)."""
    rows, next_cursor = _listed(SUMMARIES, principal, filters, page_args, plain_rows=True)
    forwarded = [row.id for row in rows if row.forwarding]
    steps = {referral_id: [] for referral_id in forwarded}
    if forwarded:
        for step in read_rows(STEPS.where(Forward.referral_id.in_(forwarded))):
            steps[step.referral_id].append(step)
    return [_summary(row, steps.get(row.id, [])) for row in rows], next_cursor


def _summary(row, steps):
    values = row._asdict()
    peer = SimpleNamespace(
        id=row.peer_id, name=values.pop("peer_name"), status=values.pop("peer_status")
    )
    sent = [c for c in PERSONAL_CATEGORIES if values.pop(f"sent_{c}")]
    return SimpleNamespace(
        **values, categories_sent=sent, peer=peer if row.peer_id else None, forwards=steps
    )


def _listed(query, principal, filters, page_args, plain_rows=False):
    role = filters.get("role")
    own = principal.organization_id
    if role == "sent":
        known = [Referral.sender_organization_id == own]
    elif role == "received":
        known = [Referral.receiver_organization_id == own]
    else:
        known = visibility.known_to_parts(principal)
    if filters.get("status"):
        query = query.where(Referral.status.in_(filters["status"]))
    if filters.get("urgency"):
        query = query.where(Referral.urgency.in_(filters["urgency"]))
    if filters.get("overdue") is not None:
        late = visibility.overdue_condition()
        query = query.where(late if filters["overdue"] else ~late)
    if filters.get("updated_since"):
        query = query.where(Referral.updated_at >= filters["updated_since"])
    if filters.get("reference"):
        query = query.where(Referral.reference == filters["reference"])
    if filters.get("assigned_to"):
        query = query.where(Referral.assigned_to_user_id == filters["assigned_to"])
    return paginate(
        query,
        Referral.created_at,
        Referral.id,
        page_args,
        sort_value=lambda r: r.created_at.isoformat(),
        parse=datetime.fromisoformat,
        plain_rows=plain_rows,
        any_of=known,
    )


URGENCY_RANK = {"emergency": 0, "high": 1, "normal": 2}


def awaiting_answer(principal, limit=100, assigned_to=None):
    """Referrals sent to the principal's organisation and not yet answered, most urgent first;
    only those assigned to `assigned_to` when it is given."""
    rank = case(URGENCY_RANK, value=Referral.urgency)
    query = (
        db.select(Referral)
        .where(
            Referral.receiver_organization_id == principal.organization_id,
            Referral.status.in_(UNANSWERED_STATUSES),
        )
        .order_by(rank, Referral.deadline_at, Referral.id)
        .limit(limit)
    )
    if assigned_to is not None:
        query = query.where(Referral.assigned_to_user_id == assigned_to)
    return db.session.scalars(query).all()


def find_by_reference(principal, reference):
    """The referral quoted on the phone (as typed: spaces, lower case), if the principal may
    know of it; None otherwise."""
    stored = references.normalized(reference)
    if stored is None:
        return None
    return db.session.scalar(
        db.select(Referral).where(Referral.reference == stored, visibility.known_to(principal))
    )


def events(principal, referral_id):
    referral, _ = _visible(principal, referral_id)
    return db.session.scalars(
        db.select(ReferralEvent).filter_by(referral_id=referral.id).order_by(ReferralEvent.id)
    ).all()


# Changing


def _check_version(referral, expected_version):
    if expected_version is None:
        raise PreconditionRequired("Send If-Match with the referral's version (its ETag).")
    if expected_version != referral.version:
        raise PreconditionFailed(
            N_(
                "The referral is at version %(version)s; reload it and try again.",
                version=referral.version,
            ),
            current_version=referral.version,
        )


def save():
    """Flush the change; if another request changed the referral first, this one loses."""
    try:
        db.session.flush()
    except StaleDataError:
        db.session.rollback()
        raise PreconditionFailed("Another change was saved first; reload the referral.") from None


def allowed_transitions(standing, status):
    return sorted(to for (frm, to), who in TRANSITIONS.items() if frm == status and who == standing)


def _allowed_now(allowed):
    if not allowed:
        return "Nothing else may be done with it now."
    return N_("Allowed now: %(statuses)s.", statuses=allowed)


def change_status(
    principal,
    referral_id,
    expected_version,
    status,
    reason=None,
    outcome=None,
    suggested_service_id=None,
):
    """Move the referral along the state machine, as the party allowed to make that move."""
    referral, standing = _visible(principal, referral_id)
    if standing not in (visibility.SENDER, visibility.RECEIVER):
        raise Forbidden("Only the sender and the receiver change a referral.")
    _check_version(referral, expected_version)
    if TRANSITIONS.get((referral.status, status)) != standing:
        allowed = allowed_transitions(standing, referral.status)
        raise Conflict(
            N_(
                "A %(standing)s cannot move a referral from %(current)s to %(status)s.",
                standing=standing,
                current=referral.status,
                status=status,
            ),
            errors=[{"field": "status", "message": _allowed_now(allowed)}],
            allowed=allowed,
        )
    if status == "declined" and reason not in DECLINE_REASONS:
        raise _field_error(
            "reason", N_("A decline needs a reason: one of %(reasons)s.", reasons=DECLINE_REASONS)
        )
    if status == "completed" and outcome is None:
        raise _field_error("outcome", "A completion needs an outcome.")
    if suggested_service_id is not None:
        if status != "declined":
            raise _field_error("suggested_service_id", "Only a decline suggests another service.")
        if db.session.get(Service, str(suggested_service_id)) is None:
            raise _field_error("suggested_service_id", "No such service.")
        referral.suggested_service_id = str(suggested_service_id)
    previous = referral.status
    referral.status = status
    referral.decline_reason = reason if status == "declined" else referral.decline_reason
    referral.outcome = outcome if status == "completed" else referral.outcome
    if status not in UNANSWERED_STATUSES:
        referral.overdue = False
    save()
    _event(referral, "referral.status_changed", principal, previous, status, reason, outcome)
    if forwards.carried(referral) and status == "withdrawn":
        forwards.enqueue(referral, "withdraw")
    audit.record(
        actor(principal),
        principal.organization_id,
        "referral.status_changed",
        "referral",
        referral.id,
        {
            "from": previous,
            "to": status,
            "version": referral.version,
            "categories": visibility.visible_categories(standing, referral),
        },
    )
    db.session.flush()
    return referral


# Who may be assigned a referral: the receiving organisation's people who handle cases.
ASSIGNABLE_ROLES = ("caseworker", "org_admin")


def assignable_users(organization_id):
    """The organisation's active caseworkers and admins, by name, to choose an assignee from."""
    return db.session.scalars(
        db.select(User)
        .where(
            User.organization_id == organization_id,
            User.active.is_(True),
            User.memberships.any(Membership.role.in_(ASSIGNABLE_ROLES)),
        )
        .order_by(User.name, User.email)
    ).all()


def _may_be_assigned(user, organization_id):
    return (
        user is not None
        and user.active
        and user.organization_id == organization_id
        and bool(set(user.roles).intersection(ASSIGNABLE_ROLES))
    )


def assign(principal, referral_id, user_id):
    """The receiving organisation names which of its people handles the referral (None: no
    one); a reassignment replaces the earlier one."""
    referral, standing = _visible(principal, referral_id)
    if standing != visibility.RECEIVER:
        raise Forbidden("Only the receiving organisation assigns a referral.")
    if principal.user_id and not principal.has_role(*ASSIGNABLE_ROLES):
        raise Forbidden(N_("This needs one of the roles: %(roles)s.", roles=ASSIGNABLE_ROLES))
    if referral.status not in OPEN_STATUSES:
        raise _field_error("status", "Only an open referral is assigned.", Conflict)
    user_id = None if user_id is None else str(user_id)
    if user_id is not None and not _may_be_assigned(
        db.session.get(User, user_id), referral.receiver_organization_id
    ):
        raise _field_error("user_id", "Choose a caseworker of the receiving organisation.")
    previous = referral.assigned_to_user_id
    if previous == user_id:
        return referral
    referral.assigned_to_user_id = user_id
    save()
    audit.record(
        actor(principal),
        principal.organization_id,
        "referral.assigned",
        "referral",
        referral.id,
        {
            "reason": "unassigned"
            if user_id is None
            else ("reassigned" if previous else "assigned"),
            "version": referral.version,
        },
    )
    db.session.flush()
    return referral


def record_peer_change(referral, status, by, reason=None, outcome=None, suggested_service_id=None):
    """A move the peer hub's receiver made, mirrored on this hub's (the sender's) copy."""
    previous = referral.status
    referral.status = status
    if status == "declined":
        referral.decline_reason, referral.suggested_service_id = reason, suggested_service_id
    if status == "completed":
        referral.outcome = outcome
    if status not in UNANSWERED_STATUSES:
        referral.overdue = False
    save()
    _event(referral, "referral.status_changed", None, previous, status, reason, outcome, by=by)
    audit.record(
        by,
        None,
        "referral.status_changed",
        "referral",
        referral.id,
        {"from": previous, "to": status, "version": referral.version},
    )
    db.session.flush()
    return referral


def _remove_personal_data(referral):
    for category in PERSONAL_CATEGORIES:
        setattr(referral, data_attribute(category), None)
    referral.consent_justification_data = None
    referral.eligibility_override_data = None
    referral.erased_at = clock.now()


def withdraw_consent(principal, referral_id, erase):
    """From now the receiver sees no personal data; erase removes it from the hub for good."""
    referral, standing = _visible(principal, referral_id)
    if standing != visibility.SENDER:
        raise Forbidden("Only the sending organisation records a withdrawal of consent.")
    if referral.consent_status == "withdrawn" and (not erase or referral.erased_at):
        raise Conflict("Consent has been withdrawn already.")
    referral.consent_status = "withdrawn"
    referral.consent_withdrawn_at = referral.consent_withdrawn_at or clock.now()
    if erase:
        _remove_personal_data(referral)
    save()
    _event(
        referral,
        "referral.consent_withdrawn",
        principal,
        referral.status,
        referral.status,
        "erased" if erase else None,
    )
    if forwards.carried(referral):
        forwards.enqueue(referral, "erase" if erase else "consent_withdraw")
    audit.record(
        actor(principal),
        principal.organization_id,
        "referral.consent_withdrawn",
        "referral",
        referral.id,
        {
            "reason": "erased" if erase else "withdrawn",
            "version": referral.version,
            "categories": visibility.visible_categories(standing, referral),
        },
    )
    db.session.flush()
    return referral


# Scheduled rules


def flag_overdue():
    """Mark unanswered referrals past their deadline and put them before the coordinators."""
    late = db.session.scalars(
        db.select(Referral).where(
            Referral.status.in_(UNANSWERED_STATUSES),
            Referral.overdue.is_(False),
            Referral.deadline_at <= clock.now(),
        )
    ).all()
    for referral in late:
        referral.overdue, referral.escalated_at = True, clock.now()
        db.session.add(Escalation(referral_id=referral.id))
        save()
        _event(referral, "referral.overdue", None, referral.status, referral.status)
        audit.record(
            "system",
            None,
            "referral.escalated",
            "referral",
            referral.id,
            {"status": referral.status},
        )
    db.session.flush()
    return len(late)


def expire_unanswered():
    """Long past the deadline, an unanswered referral expires; one forwarded to a peer hub
    expires there, and the peer's answer brings that back here."""
    cutoff = clock.now() - timedelta(days=current_app.config["REFERRAL_EXPIRY_DAYS"])
    stale = db.session.scalars(
        db.select(Referral).where(
            Referral.status.in_(UNANSWERED_STATUSES),
            Referral.deadline_at <= cutoff,
            or_(Referral.forwarding.is_(None), Referral.forwarding != "forwarded"),
        )
    ).all()
    for referral in stale:
        previous, referral.status, referral.overdue = referral.status, "expired", False
        save()
        _event(referral, "referral.status_changed", None, previous, "expired", "no answer")
        audit.record(
            "system",
            None,
            "referral.status_changed",
            "referral",
            referral.id,
            {"from": previous, "to": "expired"},
        )
    db.session.flush()
    return len(stale)


def expire_consents():
    """Consent past its expiry behaves as withdrawn: the receiver sees no personal data."""
    ended = db.session.scalars(
        db.select(Referral).where(
            Referral.consent_status == "active", Referral.consent_expires_at <= clock.now()
        )
    ).all()
    for referral in ended:
        referral.consent_status = "expired"
        save()
        _event(
            referral,
            "referral.consent_withdrawn",
            None,
            referral.status,
            referral.status,
            "expired",
        )
        audit.record(
            "system",
            None,
            "referral.consent_expired",
            "referral",
            referral.id,
            {"status": referral.status},
        )
    db.session.flush()
    return len(ended)


def rotate_data_keys(batch=200):
    """Re-encrypt every personal data value under the current key; returns how many changed."""
    current = crypto.current_key_id()
    columns = [data_attribute(c) for c in PERSONAL_CATEGORIES]
    contexts = dict(zip(columns, PERSONAL_CATEGORIES, strict=True))
    contexts |= {
        "consent_justification_data": "justification",
        "eligibility_override_data": "override",
    }
    updates = []
    for referral in db.session.scalars(db.select(Referral).execution_options(yield_per=batch)):
        values = {}
        for column, context in contexts.items():
            envelope = getattr(referral, column)
            if envelope and crypto.key_id_of(envelope) != current:
                value = crypto.decrypt(envelope, f"{referral.id}:{context}")
                values[column] = crypto.encrypt(value, f"{referral.id}:{context}")
        if values:
            updates.append((referral.id, values))
    # A bulk UPDATE leaves the referral's version alone: re-encrypting changes nothing a party sees.
    for referral_id, values in updates:
        db.session.execute(db.update(Referral).where(Referral.id == referral_id).values(**values))
    return sum(len(values) for _, values in updates)
