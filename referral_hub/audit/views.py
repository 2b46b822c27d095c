"""Coordinators read the audit log and check that its chain is intact."""

import re
from datetime import date, datetime, time

from flask import render_template, request
from flask_babel import to_utc
from marshmallow import EXCLUDE, ValidationError

from ..web.error_pages import page_blueprint
from ..web.forms import form_errors
from ..web.session import signed_in
from . import service
from .api import AuditArgs

bp = page_blueprint("audit_pages", __name__)
FILTERS = ("resource_type", "resource_id", "action", "actor", "since", "limit", "cursor")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}\Z")


def _asked():
    """The filters typed in; a day (the date field) means from that day's start, local time."""
    asked = {name: request.args[name].strip() for name in FILTERS if request.args.get(name)}
    if DATE.match(asked.get("since", "")):
        day = date.fromisoformat(asked["since"])
        asked["since"] = to_utc(datetime.combine(day, time())).isoformat() + "+00:00"
    return asked


@bp.get("/audit")
@signed_in("coordinator")
def log(principal):
    errors = {}
    try:
        args = AuditArgs().load(_asked(), unknown=EXCLUDE)
    except ValidationError as exc:
        errors, args = form_errors(exc), AuditArgs().load({})
    page_args = {"limit": args.pop("limit"), "cursor": args.pop("cursor")}
    entries, next_cursor = service.entries(principal, args, page_args, newest_first=True)
    filters = {name: request.args[name] for name in FILTERS[:-1] if request.args.get(name)}
    return render_template(
        "audit/log.html",
        entries=entries,
        next_cursor=next_cursor,
        filters=filters,
        chain=service.verify() if request.args.get("check") else None,
        values=request.args,
        errors=errors,
    )
