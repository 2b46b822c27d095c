"""What a notification says, in its reader's language: a subject that says what to do, and a
plain text and a simple HTML body with the referral's reference and a link. Only the facts the
outbox kept are shown, and they never hold the child's personal data."""

from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from flask_babel import force_locale, format_date, format_datetime, format_time
from flask_babel import gettext as _

from .. import clock
from ..web import labels, localize
from .service import LOCAL_TIME

DIGEST_ITEMS = 20  # a longer digest lists the first ones and links to the rest
MAX_HTML_BYTES = 30 * 1024


@dataclass(frozen=True)
class Content:
    subject: str
    text: str
    html: str
    language: str


def _moment(value):
    return datetime.fromisoformat(value) if value else None


def _by(deadline):
    """'18:00' on the day it is sent, else the day and time, in Phnom Penh."""
    if deadline is None:
        return ""
    today = clock.now().astimezone(LOCAL_TIME).date()
    if deadline.astimezone(LOCAL_TIME).date() == today:
        return format_time(deadline, "HH:mm")
    return format_datetime(deadline, "EEE d MMM HH:mm")


def _urgency_tag(facts):
    return {"emergency": _("[Urgent] "), "high": _("[High] ")}.get(facts.get("urgency"), "")


def headline(kind, facts):
    """One line that says what happened and what to do: an item's title and a subject."""
    reference = facts.get("reference", "")
    deadline = _by(_moment(facts.get("deadline_at")))
    tag = _urgency_tag(facts)
    if kind == "referral_new" and facts.get("assigned"):
        return tag + _(
            "Referral %(ref)s assigned to you – answer by %(by)s", ref=reference, by=deadline
        )
    if kind == "referral_new":
        return tag + _("New referral %(ref)s – answer by %(by)s", ref=reference, by=deadline)
    if kind == "deadline_half":
        return tag + _(
            "Half the time is gone: answer referral %(ref)s by %(by)s", ref=reference, by=deadline
        )
    if kind == "deadline_passed":
        return _("[Overdue] Referral %(ref)s – answer it now", ref=reference)
    if kind == "consent_withdrawn":
        return _(
            "Consent withdrawn for referral %(ref)s – stop using its personal data", ref=reference
        )
    if kind == "referral_answered":
        return _answer_headline(facts.get("status"), reference, facts.get("receiver") or "")
    if kind == "service_unverified":
        return _(
            "Check your service %(service)s: confirm its details are still true",
            service=facts.get("service", ""),
        )
    if kind == "subscription_disabled":
        return _("Callback to %(url)s stopped – fix it, then resume it", url=facts.get("url", ""))
    return kind


def _answer_headline(status, reference, organization):
    lines = {
        "received": _("Referral %(ref)s received by %(org)s – wait for their answer"),
        "accepted": _("Referral %(ref)s accepted by %(org)s – tell the family"),
        "declined": _("Referral %(ref)s declined by %(org)s – find another service"),
        "completed": _("Referral %(ref)s completed by %(org)s – plan the follow-up"),
        "withdrawn": _("Referral %(ref)s withdrawn – nothing more to do"),
        "expired": _("Referral %(ref)s expired unanswered – refer elsewhere"),
    }
    line = lines.get(status, _("Referral %(ref)s changed"))
    return line % {"ref": reference, "org": organization}


def details(facts):
    """The facts worth a line each, already worded: age, sex, needs, parties, service."""
    lines = []
    if facts.get("age") is not None or facts.get("sex"):
        sex = labels.sex_labels().get(facts.get("sex"), "")
        age = _("%(age)s years", age=facts["age"]) if facts.get("age") is not None else ""
        lines.append(", ".join(part for part in (age, sex) if part))
    if facts.get("categories"):
        names = ", ".join(localize.category_name(code) for code in facts["categories"])
        lines.append(_("Needs: %(needs)s", needs=names))
    if facts.get("urgency"):
        lines.append(_("Urgency: %(urgency)s", urgency=labels.urgency_labels()[facts["urgency"]]))
    if facts.get("service"):
        lines.append(_("Service: %(service)s", service=facts["service"]))
    if facts.get("sender"):
        lines.append(_("From: %(org)s", org=facts["sender"]))
    if facts.get("reason"):
        lines.append(_("Why: %(reason)s", reason=facts["reason"]))
    if facts.get("last_verified_at"):
        verified = format_date(_moment(facts["last_verified_at"]), "medium")
        lines.append(_("Last verified: %(date)s", date=verified))
    return lines


def _item(notification):
    facts = notification.facts
    return {
        "title": headline(notification.kind, facts),
        "details": details(facts),
        "link": current_app.config["HUB_ISSUER"] + facts.get("path", "/home"),
        "emergency": facts.get("urgency") == "emergency",
    }


def render(notifications, language, digest):
    """The message carrying these notifications (one, or a digest's several) in `language`;
    its HTML stays under 30 KB (Khmer takes 3 bytes a letter): a long digest lists fewer."""
    shown = DIGEST_ITEMS
    while True:
        found = _render(notifications, language, digest, shown)
        if len(found.html.encode()) < MAX_HTML_BYTES or shown == 1:
            return found
        shown = max(1, shown // 2)


def _render(notifications, language, digest, shown):
    with force_locale(language):
        items = [_item(n) for n in notifications[:shown]]
        more = len(notifications) - len(items)
        if digest:
            count = len(notifications)
            subject = _("Referral Hub: %(count)s updates to look at today", count=count)
        else:
            subject = items[0]["title"]
        context = {
            "subject": subject,
            "items": items,
            "more": more,
            "digest": digest,
            "home": current_app.config["HUB_ISSUER"] + "/home",
            "settings": current_app.config["HUB_ISSUER"] + "/notifications",
            "language": language,
        }
        # Not render_template: the pages' context processors need a request.
        text = current_app.jinja_env.get_template("notifications/message.txt").render(context)
        html = current_app.jinja_env.get_template("notifications/message.html").render(context)
    return Content(subject, text, html, language)
