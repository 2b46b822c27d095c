"""Coordinators watch the network's overdue and escalated referrals (no personal data)."""

from flask import render_template, request
from marshmallow import EXCLUDE, ValidationError
from sqlalchemy import func

from .. import clock
from ..directory import service as directory
from ..extensions import db
from ..web.error_pages import page_blueprint
from ..web.forms import form_errors
from ..web.labels import status_labels, urgency_labels
from ..web.session import signed_in
from . import service
from .models import UNANSWERED_STATUSES, URGENCIES, Escalation
from .schemas import ListArgs

bp = page_blueprint("network_pages", __name__, url_prefix="/network")
FILTERS = ("urgency", "status", "cursor")


def _escalations(referrals):
    """When each referral was last put before the coordinators, by referral id."""
    ids = [referral.id for referral in referrals]
    if not ids:
        return {}
    rows = db.session.execute(
        db.select(Escalation.referral_id, func.max(Escalation.created_at))
        .where(Escalation.referral_id.in_(ids))
        .group_by(Escalation.referral_id)
    ).all()
    return dict(rows)


@bp.get("/overdue")
@signed_in("coordinator")
def overdue(principal):
    asked = {name: request.args[name] for name in FILTERS if request.args.get(name)}
    errors = {}
    try:
        args = ListArgs().load(asked, unknown=EXCLUDE)
    except ValidationError as exc:
        errors, args = form_errors(exc), ListArgs().load({})
    page_args = {"limit": args.pop("limit"), "cursor": args.pop("cursor")}
    referrals, next_cursor = service.list_referrals(principal, {**args, "overdue": True}, page_args)
    names = directory.display_names(
        [r.service_id for r in referrals],
        [o for r in referrals for o in (r.sender_organization_id, r.receiver_organization_id)],
    )
    return render_template(
        "network/overdue.html",
        referrals=referrals,
        names=names,
        escalations=_escalations(referrals),
        next_cursor=next_cursor,
        now=clock.now(),
        urgency_options=[(code, urgency_labels()[code]) for code in URGENCIES],
        status_options=[(code, status_labels()[code]) for code in UNANSWERED_STATUSES],
        values=request.args,
        errors=errors,
    )
