"""Referral API: send, read, move along the state machine, assign, withdraw consent."""

import re

from flask import Blueprint, jsonify, request, url_for

from ..auth.principal import protected
from ..errors import InvalidInput
from ..extensions import db
from ..request_handling import json_body
from . import service
from .presentation import present, present_event
from .schemas import Assignment, ConsentWithdrawal, ListArgs, ReferralCreate, StatusChange

bp = Blueprint("referrals_api", __name__, url_prefix="/api/v1/referrals")
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
VERSION_TAG = re.compile(r'^(?:W/)?"?(\d{1,9})"?$')
# Made once: a schema's first use builds its nested schemas and copies its fields.
REFERRAL_CREATE, STATUS_CHANGE, CONSENT_WITHDRAWAL, ASSIGNMENT, LIST_ARGS = (
    ReferralCreate(),
    StatusChange(),
    ConsentWithdrawal(),
    Assignment(),
    ListArgs(),
)


def _idempotency_key():
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        message = "Up to 200 visible ASCII characters."
        raise InvalidInput(message, errors=[{"field": "Idempotency-Key", "message": message}])
    return key


def _expected_version():
    """The version the client last saw, from If-Match ("3") or, failing that, none."""
    header = request.headers.get("If-Match")
    if header is None:
        return None
    match = VERSION_TAG.match(header.strip())
    if not match:
        message = 'Send the ETag you got, e.g. If-Match: "3".'
        raise InvalidInput(message, errors=[{"field": "If-Match", "message": message}])
    return int(match.group(1))


def _referral_response(principal, referral_id, status=200, audit_read=True):
    """The referral as the principal may see it: never cached, tagged with its version.

    After a change it is built in the change's transaction from the changed referral (the
    caller holds it, so the session, which keeps unchanged objects only weakly, still has it),
    committed once, and nothing is read again after the commit; the change's own audit entry
    names the categories the answer shows, so no second entry is written for it."""
    referral, _standing, personal, extras = service.read_referral(
        principal, referral_id, audit_read
    )
    body, version = present(referral, personal, extras), referral.version
    db.session.commit()
    response = jsonify(body)
    response.status_code = status
    response.headers["ETag"] = f'"{version}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("")
@protected("referrals:write")
def create_referral(principal):
    key = _idempotency_key()
    data = json_body(REFERRAL_CREATE)
    referral, created = service.create_referral(principal, data, key)
    referral_id = referral.id  # read before the commit expires it
    response = _referral_response(principal, referral_id, 201 if created else 200, False)
    response.headers["Location"] = url_for(".get_referral", referral_id=referral_id)
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.get("")
@protected("referrals:read")
def list_referrals(principal):
    filters = LIST_ARGS.load(request.args)
    page_args = {"limit": filters.pop("limit"), "cursor": filters.pop("cursor")}
    referrals, next_cursor = service.list_summaries(principal, filters, page_args)
    return {"items": [present(r) for r in referrals], "next_cursor": next_cursor}


@bp.get("/<uuid:referral_id>")
@protected("referrals:read")
def get_referral(referral_id, principal):
    return _referral_response(principal, str(referral_id))


@bp.get("/<uuid:referral_id>/events")
@protected("referrals:read")
def referral_events(referral_id, principal):
    found = service.events(principal, str(referral_id))
    return {"items": [present_event(event) for event in found], "next_cursor": None}


@bp.post("/<uuid:referral_id>/status")
@protected("referrals:write")
def change_status(referral_id, principal):
    expected = _expected_version()
    change = json_body(STATUS_CHANGE)
    changed = service.change_status(principal, str(referral_id), expected, **change)
    return _referral_response(principal, changed.id, audit_read=False)


@bp.post("/<uuid:referral_id>/consent/withdraw")
@protected("referrals:write")
def withdraw_consent(referral_id, principal):
    body = json_body(CONSENT_WITHDRAWAL) if request.content_length else {"erase": False}
    withdrawn = service.withdraw_consent(principal, str(referral_id), **body)
    return _referral_response(principal, withdrawn.id, audit_read=False)


@bp.post("/<uuid:referral_id>/assignment")
@protected("referrals:write")
def assign(referral_id, principal):
    body = json_body(ASSIGNMENT)
    assigned = service.assign(principal, str(referral_id), body["user_id"])
    return _referral_response(principal, assigned.id, audit_read=False)
