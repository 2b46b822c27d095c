"""Pages for finding a service: filters, results with capacity and contacts, one service."""

from flask import render_template, request, url_for
from flask_babel import gettext as _
from marshmallow import ValidationError
from sqlalchemy import select

from ..extensions import db
from ..federation.models import Peer
from ..web import forms, localize
from ..web.error_pages import page_blueprint
from ..web.session import signed_in
from . import documents, search, service
from .models import ServiceLanguage
from .schemas import SEXES, SearchArgs

bp = page_blueprint("directory_pages", __name__)
FILTERS = ("category", "province", "district", "age", "sex", "language", "accepting", "hub", "q")
# Fewer than the API's 50: a page of results in Khmer must stay well under 100 KB on a phone.
PAGE_SIZE = 20


def _search_args(form):
    """The filters as the API takes them (categories as one comma-separated value)."""
    args = {k: form.get(k) for k in FILTERS if k != "category" and form.get(k)}
    args["limit"] = PAGE_SIZE
    categories = [code for code in form.getlist("category") if code]  # "Any category" is ""
    if categories:
        args["category"] = ",".join(categories)
    if form.get("cursor"):
        args["cursor"] = form["cursor"]
    return args


def _languages():
    codes = db.session.scalars(select(ServiceLanguage.code).distinct()).all()
    return sorted((code, localize.language_name(code)) for code in codes)


def _hubs():
    """This network and the active peer hubs whose services are in the directory; none alone."""
    peers = db.session.execute(
        db.select(Peer.id, Peer.name)
        .where(Peer.status == "active", Peer.url.is_not(None))
        .order_by(Peer.name)
    ).all()
    return [("local", _("This network only")), *peers] if peers else []


def filter_messages():
    """What a filter's refusal says on the page: plain words in the reader's language, never
    the validator's own text ("String does not match expected pattern.")."""
    choose = _("Choose one from the list.")
    return {
        "category": choose,
        "province": choose,
        "district": choose,
        "sex": choose,
        "language": choose,
        "accepting": choose,
        "hub": choose,
        "age": _("Type an age in years, from 0 to 120."),
        "q": _("Type at most 200 characters."),
        "cursor": _("This list has changed; search again."),
    }


def _filter_errors(exc):
    messages = filter_messages()
    return {
        field: [messages.get(field, _("Check this filter."))] for field in forms.form_errors(exc)
    }


@bp.get("/find")
@signed_in()
def find(principal):
    """The filters, and once the form was sent (even empty: then every service), the results,
    the reader's own organisation's left out unless they ask for them."""
    hits, more_url, errors, total = [], None, {}, 0
    searched = bool(request.args)
    if searched:
        try:
            args = SearchArgs().load(_search_args(request.args))
            page_args = {"limit": args.pop("limit"), "cursor": args.pop("cursor")}
            if request.args.get("include_mine") != "yes":
                args["exclude_organization_id"] = principal.organization_id
            total = search.count_services(args)
            hits, next_cursor = search.search_services(
                args, page_args, service.sees_confidential_addresses(principal)
            )
            more_url = next_cursor and url_for(
                ".find", **{**request.args.to_dict(flat=False), "cursor": next_cursor}
            )
        except ValidationError as exc:
            errors = _filter_errors(exc)
    return render_template(
        "directory/find.html",
        values=request.args,
        errors=errors,
        hits=hits,
        total=total,
        searched=searched,
        more_url=more_url,
        **localize.area_and_category_choices(),
        languages=_languages(),
        hubs=_hubs(),
        sexes=SEXES,
        show_confidential=service.sees_confidential_addresses(principal),
    )


@bp.get("/services/<uuid:service_id>")
@signed_in()
def service_page(service_id, principal):
    show_confidential = service.sees_confidential_addresses(principal)
    found = documents.service_document(str(service_id), show_confidential)
    return render_template(
        "directory/service.html", service=found, show_confidential=show_confidential
    )
