"""A referral as JSON for one party: the facts it may see, and what is held back from it."""

from ..federation.outbox import flagged
from .models import FHIR_TASK_STATUS
from .visibility import is_overdue


def _time(value):
    return value.isoformat() if value else None


def present(referral, personal=None, extras=None):
    """The referral with only the personal data given; the other categories sent are `redacted`."""
    personal = personal or {}
    extras = extras or {}
    consent = {
        "given_by": referral.consent_given_by,
        "method": referral.consent_method,
        "obtained_at": _time(referral.consent_obtained_at),
        "categories": referral.consent_categories,
        "share_identity_with_government": referral.consent_share_identity_with_government,
        "status": referral.consent_status,
        "expires_at": _time(referral.consent_expires_at),
        "withdrawn_at": _time(referral.consent_withdrawn_at),
    }
    if "justification" in extras:
        consent["justification"] = extras["justification"]
    body = {
        "id": referral.id,
        "reference": referral.reference,
        "version": referral.version,
        "status": referral.status,
        "fhir_status": FHIR_TASK_STATUS[referral.status],
        "urgency": referral.urgency,
        "overdue": is_overdue(referral),
        "deadline_at": _time(referral.deadline_at),
        "needs": referral.needs,
        "service_id": referral.service_id,
        "sender_organization_id": referral.sender_organization_id,
        "receiver_organization_id": referral.receiver_organization_id,
        "assigned_to_user_id": referral.assigned_to_user_id,
        "subject": {
            "sex": referral.subject_sex,
            "birth_year": referral.subject_birth_year,
            "age": referral.subject_age,
            "province": referral.subject_province,
            "district": referral.subject_district,
            **personal,
        },
        "redacted": [c for c in referral.categories_sent if c not in personal],
        "consent": consent,
        "erased": referral.erased_at is not None,
        "decline_reason": referral.decline_reason,
        "suggested_service_id": referral.suggested_service_id,
        "outcome": referral.outcome,
        "created_at": _time(referral.created_at),
        "updated_at": _time(referral.updated_at),
        **_across_networks(referral),
    }
    if "eligibility_override" in extras:
        body["eligibility_override"] = {"reason": extras["eligibility_override"]}
    return body


def _across_networks(referral):
    """The peer hub a referral went to or came from; how its forwarding stands; who referred."""
    peer = referral.peer
    return {
        "peer": {"id": peer.id, "name": peer.name, "former": peer.status == "removed"}
        if peer
        else None,
        "forwarding": referral.forwarding,
        "forwarding_flagged": flagged(referral),
        "forwarded_steps": [
            {
                "action": step.action,
                "status": step.status,
                "requested_at": _time(step.created_at),
                "confirmed_at": _time(step.done_at),
                "error": None if step.status == "done" else step.last_error,
            }
            for step in (referral.forwards if referral.forwarding else ())
        ],
        "referrer": referral.referrer,
    }


def present_event(event):
    return {
        "id": event.id,
        "type": event.type,
        "from_status": event.from_status,
        "to_status": event.to_status,
        "version": event.version,
        "actor": event.actor,
        "organization_id": event.organization_id,
        "reason": event.reason,
        "outcome": event.outcome,
        "at": _time(event.at),
    }
