"""Pages: each person's notification choices and addresses, their organisation's defaults and
the messages sent with their attempts (admins), and the development mailbox /dev/mail."""

import email
import email.policy
import logging
from pathlib import Path

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from ..csrf import check_csrf
from ..extensions import db
from ..web.error_pages import page_blueprint
from ..web.i18n import LANGUAGES
from ..web.session import signed_in
from . import service
from .models import CHOICES, KINDS, MESSAGE_STATES

bp = page_blueprint("notification_pages", __name__, url_prefix="/notifications")
dev_bp = page_blueprint("dev_mail", __name__, url_prefix="/dev/mail")
log = logging.getLogger(__name__)
KIND_NAMES = {
    "referral_new": _l("A new referral to my organisation"),
    "referral_answered": _l("A referral I sent is received, answered, completed or withdrawn"),
    "deadline_half": _l("Half the time to answer a referral is gone"),
    "deadline_passed": _l("The time to answer a referral has passed"),
    "consent_withdrawn": _l("Consent is withdrawn on a referral we hold"),
    "service_unverified": _l("A service of ours has not been verified for too long"),
    "subscription_disabled": _l("The hub stopped one of our callbacks"),
}
CHOICE_NAMES = {
    "immediate": _l("At once"),
    "digest": _l("In the morning digest (07:00)"),
    "off": _l("Never"),
}
CHANNEL_NAMES = {"email": _l("E-mail"), "telegram": _l("Telegram")}
STATE_NAMES = {"pending": _l("Waiting to be sent"), "sent": _l("Sent"), "failed": _l("Failed")}


def configure(app):
    """Say at start which channels are on (production without SMTP_URL has no e-mail), and
    give pages the banner of paused notifications."""
    app.jinja_env.globals["paused_notifications"] = banner
    names = app.extensions["hub_notifier"].channel_names
    if app.config["HUB_ENV"] == "production" and "email" not in names:
        log.warning("E-mail notifications are off: set SMTP_URL to send them.")
    if app.config["HUB_ENV"] != "testing":
        log.info("notification channels: %s", ", ".join(names) or "none")


def banner():
    """The channels paused for the signed-in person, for the banner on every page."""
    user = g.get("user")
    if user is None or not service.enabled():
        return []
    return service.paused_channels(user)


def _choice_fields(form):
    return {kind: form.get(f"choice_{kind}") for kind in KINDS if form.get(f"choice_{kind}")}


@bp.get("")
@signed_in()
def preferences(principal):
    user = g.user
    chosen, _mine = service.choices(user)
    return render_template(
        "notifications/preferences.html",
        chosen=chosen,
        defaults=service.organization_defaults(user.organization_id),
        kind_names=KIND_NAMES,
        choice_names=CHOICE_NAMES,
        choices=CHOICES,
        channels=current_app.extensions["hub_notifier"].channel_names,
        channel_names=CHANNEL_NAMES,
        paused=service.paused_channels(user),
        telegram=service.address(user.id, "telegram"),
    )


@bp.post("")
@signed_in()
def save_preferences(principal):
    check_csrf()
    service.set_choices(g.user, _choice_fields(request.form))
    if request.form.get("language") in LANGUAGES:
        service.set_language(g.user, request.form["language"])
    db.session.commit()
    flash(_("Your notification choices are saved."), "success")
    return redirect(url_for(".preferences"))


@bp.post("/resume/<channel>")
@signed_in()
def resume(channel, principal):
    check_csrf()
    service.resume(g.user, channel)
    db.session.commit()
    flash(_("Notifications are being sent again."), "success")
    return redirect(url_for(".preferences"))


@bp.post("/telegram/code")
@signed_in()
def telegram_code(principal):
    check_csrf()
    if "telegram" not in current_app.extensions["hub_notifier"].channel_names:
        abort(404)
    code = service.telegram_link_code(g.user)
    db.session.commit()
    return render_template(
        "notifications/telegram_code.html", code=code, minutes=service.LINK_CODE_MINUTES
    )


@bp.post("/telegram/unlink")
@signed_in()
def telegram_unlink(principal):
    check_csrf()
    service.unlink_telegram(g.user)
    db.session.commit()
    flash(_("Telegram is no longer linked."), "success")
    return redirect(url_for(".preferences"))


@bp.get("/organization")
@signed_in("org_admin")
def organization(principal):
    return render_template(
        "notifications/organization.html",
        defaults=service.organization_defaults(principal.organization_id),
        kind_names=KIND_NAMES,
        choice_names=CHOICE_NAMES,
        choices=CHOICES,
    )


@bp.post("/organization")
@signed_in("org_admin")
def save_organization(principal):
    check_csrf()
    service.set_organization_defaults(principal, _choice_fields(request.form))
    db.session.commit()
    flash(_("Your organisation's defaults are saved."), "success")
    return redirect(url_for(".organization"))


@bp.get("/messages")
@signed_in("org_admin")
def messages(principal):
    status = request.args.get("status") if request.args.get("status") in MESSAGE_STATES else None
    return render_template(
        "notifications/messages.html",
        messages=service.messages(principal, status),
        status=status,
        kind_names=KIND_NAMES,
        state_names=STATE_NAMES,
        channel_names=CHANNEL_NAMES,
    )


@bp.post("/messages/<notification_id>/send-again")
@signed_in("org_admin")
def send_again(notification_id, principal):
    check_csrf()
    service.send_again(principal, notification_id)
    db.session.commit()
    flash(_("The message will be sent again."), "success")
    return redirect(url_for(".messages"))


# Development only (registered only there): the mailbox the demo writes to


def _mailbox():
    return Path(current_app.instance_path) / "mail"


def _read(path):
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    return {
        "name": path.name,
        "subject": message["Subject"],
        "to": message["To"],
        "date": message["Date"],
        "message_id": message["Message-ID"],
        "text": text.get_content() if text else "",
        "html": html.get_content() if html else "",
    }


@dev_bp.get("")
def mailbox():
    folder = _mailbox()
    files = sorted(folder.glob("*.eml"), reverse=True)[:200] if folder.exists() else []
    return render_template("notifications/dev_mail.html", mails=[_read(p) for p in files])


@dev_bp.get("/<name>")
def mail(name):
    path = _mailbox() / Path(name).name
    if path.suffix != ".eml" or not path.is_file():
        abort(404)
    return render_template("notifications/dev_mail_one.html", mail=_read(path))
