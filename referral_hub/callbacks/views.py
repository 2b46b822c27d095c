"""Pages for an organisation's admins: status callback subscriptions and their delivery log."""

from functools import partial

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from ..csrf import check_csrf
from ..errors import InvalidInput
from ..extensions import db
from ..web.error_pages import page_blueprint
from ..web.forms import form_errors
from ..web.pages import list_and_form, shown_once
from ..web.session import signed_in
from . import service
from .models import DELIVERY_STATES, EVENT_TYPES
from .schemas import DeliveryListArgs, SubscriptionCreate

bp = page_blueprint("callback_pages", __name__, url_prefix="/callbacks")
ADMIN = "org_admin"
DELIVERIES_PER_PAGE = 20
OAUTH_FIELDS = ("token_url", "client_id", "client_secret", "scope")
OAUTH_RENAMED = {f"oauth.{key}": f"oauth_{key}" for key in OAUTH_FIELDS}
EVENT_NAMES = {
    "referral.created": _l("A referral is sent to us"),
    "referral.status_changed": _l("A referral's status changes"),
    "referral.consent_withdrawn": _l("Consent for a referral is withdrawn"),
}
STATE_NAMES = {
    "active": _l("Active"),
    "paused": _l("Paused"),
    "disabled": _l("Stopped by the hub"),
    "pending": _l("Waiting to be sent"),
    "delivered": _l("Delivered"),
    "failed": _l("Failed"),
}


def _subscriptions_page(principal, values, errors, status=200):
    return list_and_form(
        "callbacks/subscriptions.html",
        partial(service.list_subscriptions, principal),
        values,
        errors,
        status,
        event_options=[(event, f"{EVENT_NAMES[event]} ({event})") for event in EVENT_TYPES],
        event_names=EVENT_NAMES,
        state_names=STATE_NAMES,
    )


@bp.get("")
@signed_in(ADMIN)
def subscriptions(principal):
    return _subscriptions_page(principal, MultiDict([("event_types", e) for e in EVENT_TYPES]), {})


def _subscription_fields(form):
    fields = {"url": form.get("url", "").strip(), "event_types": form.getlist("event_types")}
    oauth = {key: form.get(f"oauth_{key}", "").strip() for key in OAUTH_FIELDS}
    if any(oauth.values()):
        fields["oauth"] = {key: value for key, value in oauth.items() if value or key != "scope"}
    return fields


@bp.post("")
@signed_in(ADMIN)
def create(principal):
    """Register a callback URL; its signing secret is on the answer to this form only."""
    check_csrf()
    try:
        data = SubscriptionCreate().load(_subscription_fields(request.form))
        subscription, secret = service.create_subscription(principal, **data)
    except (ValidationError, InvalidInput) as exc:
        db.session.rollback()
        typed = MultiDict(request.form)
        typed.pop("oauth_client_secret", None)  # a secret is never sent back to the browser
        return _subscriptions_page(principal, typed, form_errors(exc, OAUTH_RENAMED), 422)
    db.session.commit()
    return shown_once("callbacks/secret.html", subscription=subscription, secret=secret, new=True)


def _delivery_filters():
    """The delivery log's filter and page from the address; an empty choice means all."""
    wanted = {key: request.args[key] for key in ("status", "cursor") if request.args.get(key)}
    args = DeliveryListArgs().load({**wanted, "limit": DELIVERIES_PER_PAGE})
    return {"limit": args.pop("limit"), "cursor": args.pop("cursor")}, args


@bp.get("/<uuid:subscription_id>")
@signed_in(ADMIN)
def subscription(subscription_id, principal):
    found = service.get_subscription(principal, str(subscription_id))
    page, filters = _delivery_filters()
    deliveries, next_cursor = service.deliveries(principal, found.id, page, **filters)
    return render_template(
        "callbacks/subscription.html",
        subscription=found,
        deliveries=deliveries,
        next_cursor=next_cursor,
        event_names=EVENT_NAMES,
        state_names=STATE_NAMES,
        status_options=[(state, STATE_NAMES[state]) for state in DELIVERY_STATES],
        values=request.args,
    )


def _back_to(subscription_id):
    return redirect(url_for(".subscription", subscription_id=subscription_id))


@bp.post("/<uuid:subscription_id>/paused")
@signed_in(ADMIN)
def set_paused(subscription_id, principal):
    check_csrf()
    paused = request.form.get("paused") == "true"
    service.set_paused(principal, str(subscription_id), paused)
    db.session.commit()
    if paused:
        flash(_("Paused: new callbacks wait until you resume."), "success")
    else:
        flash(_("Resumed: waiting callbacks are being sent."), "success")
    return _back_to(subscription_id)


@bp.post("/<uuid:subscription_id>/rotate-secret")
@signed_in(ADMIN)
def rotate_secret(subscription_id, principal):
    check_csrf()
    found, secret = service.rotate_secret(principal, str(subscription_id))
    db.session.commit()
    return shown_once("callbacks/secret.html", subscription=found, secret=secret, new=False)


@bp.post("/<uuid:subscription_id>/delete")
@signed_in(ADMIN)
def delete(subscription_id, principal):
    check_csrf()
    service.delete_subscription(principal, str(subscription_id))
    db.session.commit()
    flash(_("The subscription is deleted; its waiting callbacks will not be sent."), "success")
    return redirect(url_for(".subscriptions"))


def _replayed(subscription_id, count):
    db.session.commit()
    flash(
        ngettext(
            "%(num)d failed callback will be sent again.",
            "%(num)d failed callbacks will be sent again.",
            count,
        ),
        "success",
    )
    return _back_to(subscription_id)


@bp.post("/<uuid:subscription_id>/replay")
@signed_in(ADMIN)
def replay_failed(subscription_id, principal):
    check_csrf()
    return _replayed(subscription_id, service.replay(principal, str(subscription_id)))


@bp.post("/<uuid:subscription_id>/deliveries/<delivery_id>/replay")
@signed_in(ADMIN)
def replay_one(subscription_id, delivery_id, principal):
    check_csrf()
    count = service.replay(principal, str(subscription_id), delivery_id)
    return _replayed(subscription_id, count)
