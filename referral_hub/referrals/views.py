"""Caseworkers' pages: what needs my answer, sending a referral, one referral and its actions."""

import uuid

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from ..auth.models import User
from ..csrf import check_csrf
from ..directory import service as directory
from ..errors import Problem
from ..extensions import db
from ..web import localize
from ..web.confirm import ask_first, confirmation_page, confirmed, typed_matches
from ..web.error_pages import page_blueprint
from ..web.labels import decline_reason_labels, status_labels
from ..web.messages import translate
from ..web.navigation import lands_on_dashboard
from ..web.session import signed_in
from . import contacts, drafts, form, service
from .models import OPEN_STATUSES, PERSONAL_CATEGORIES
from .schemas import SUBJECT_SEXES, ListArgs, ReferralCreate, StatusChange

bp = page_blueprint("referral_pages", __name__)
# Moves that end the referral for the other side: each asks once more on its own page.
DRASTIC_STATUSES = ("declined", "withdrawn")


def _names_for(referrals):
    return directory.display_names(
        [r.service_id for r in referrals],
        [o for r in referrals for o in (r.sender_organization_id, r.receiver_organization_id)],
    )


def _card_context(principal, referrals):
    """What the cards of a list show beyond the referral: names, the child's initials where
    the viewer may see them, and the assignees."""
    names = _names_for(referrals)
    assignee_ids = {r.assigned_to_user_id for r in referrals if r.assigned_to_user_id}
    names.update(
        (user.id, user.name or user.email)
        for user in db.session.scalars(db.select(User).where(User.id.in_(assignee_ids)))
    )
    return {"names": names, "initials": service.initials(principal, referrals)}


def _drafts_listed(principal, service_id=None, shown=None):
    """The principal's drafts beside their services' names, but the one on the page."""
    found = [d for d in drafts.list_drafts(principal, service_id) if d.id != shown]
    names = directory.display_names([d.service_id for d in found])
    return [(d, names.get(d.service_id, "")) for d in found]


@bp.get("/home")
@signed_in()
def home(principal):
    reference = request.args.get("reference", "").strip()
    if reference:
        return _found_by_reference(principal, reference)
    if lands_on_dashboard(principal):
        return redirect(url_for("report_pages.dashboard"))
    mine = request.args.get("assigned") == "me"
    assigned_to = principal.user_id if mine else None
    awaiting = service.awaiting_answer(principal, assigned_to=assigned_to)
    filters = {"role": "received", "status": ["accepted", "in_progress"]}
    working, _cursor = service.list_referrals(
        principal, {**filters, "assigned_to": assigned_to}, {"limit": 50, "cursor": None}
    )
    sent, next_cursor = [], None
    if not mine:  # one's own organisation's referrals are assigned at the other end
        paging = {k: v for k, v in request.args.items() if k in ("limit", "cursor")}
        page_args = ListArgs(only=("limit", "cursor")).load(paging)
        sent, next_cursor = service.list_referrals(principal, {"role": "sent"}, page_args)
    context = _card_context(principal, [*awaiting, *working, *sent])
    context.update(drafts=_drafts_listed(principal), draft_expires=drafts.expires_at)
    db.session.commit()  # the audit entries of the initials shown
    return render_template(
        "referrals/home.html",
        awaiting=awaiting,
        working=working,
        sent=sent,
        mine=mine,
        more_url=next_cursor and url_for(".home", cursor=next_cursor),
        **context,
    )


def _found_by_reference(principal, reference):
    """Open the referral quoted on the phone; say so when there is none the user may see."""
    found = service.find_by_reference(principal, reference)
    if found is None:
        page = render_template("referrals/not_found.html", reference=reference)
        return page, 404
    return redirect(url_for(".referral_page", referral_id=found.id))


def _referral_form(principal, found, step, values, errors=None, status=200, draft=None):
    """Step 1 (consent) or step 2 (the facts and the agreed categories) of the form."""
    errors = form.errors_of_step(errors or {}, step)
    choices = localize.area_and_category_choices()
    chosen_needs = values.getlist("needs")
    page = render_template(
        "referrals/new.html",
        service=found,
        step=step,
        values=values,
        errors=errors,
        carried=form.carried(values, step),
        label=form.labels(),
        linked=form.labels_on(step, values),
        category_fields=form.CATEGORY_FIELDS,
        need_options=[
            (code, name)
            for code, name in choices["categories"]
            if code in found.category_codes or code in chosen_needs
        ],
        **choices,
        sexes=SUBJECT_SEXES,
        personal_categories=PERSONAL_CATEGORIES,
        draft=draft,
        drafts=_drafts_listed(principal, found.id, shown=draft and draft.id),
        draft_expires=drafts.expires_at,
    )
    return page, status


@bp.get("/services/<uuid:service_id>/refer")
@signed_in("caseworker", "org_admin")
def new_referral(service_id, principal):
    found = directory.get_service(str(service_id))
    values = MultiDict(
        {
            "idempotency_key": uuid.uuid4().hex,
            "urgency": "normal",
            "consent.obtained_at": form.local_now(),
        }
    )
    values.setlist("needs", found.category_codes)
    return _referral_form(principal, found, "consent", values)


@bp.post("/services/<uuid:service_id>/refer")
@signed_in("caseworker", "org_admin")
def send_referral(service_id, principal):
    """One form, four buttons: continue to step 2, back to step 1, save a draft, send."""
    check_csrf()
    found = directory.get_service(str(service_id))
    values = form.values_of(request.form)
    step = request.form.get("step") if request.form.get("step") in form.STEPS else "consent"
    go = request.form.get("go", "send")
    if go == "draft":
        return _save_draft(principal, found, step, values)
    if go == "consent":
        return _referral_form(principal, found, "consent", values)
    body = form.referral_data(values, found.id)
    try:
        if go == "details":
            ReferralCreate(only=("consent",)).load({"consent": body["consent"]})
            return _referral_form(principal, found, "details", values)
        data = ReferralCreate().load(body)
        referral, _created = service.create_referral(principal, data, values.get("idempotency_key"))
    except (ValidationError, Problem) as exc:
        db.session.rollback()
        errors = form.page_errors(exc)
        status = exc.status if isinstance(exc, Problem) else 422
        return _referral_form(principal, found, form.step_to_show(errors), values, errors, status)
    if values.get("draft_id"):
        drafts.sent(principal, values["draft_id"])
    db.session.commit()
    flash(
        _("The referral was sent. %(name)s will be told now.", name=found.organization.name),
        "success",
    )
    return redirect(url_for(".referral_page", referral_id=referral.id))


def _save_draft(principal, found, step, values):
    draft = drafts.save_draft(
        principal, found.id, step, form.draft_values(values), values.get("draft_id")
    )
    db.session.commit()
    flash(_("Draft saved. Only you can see it."), "success")
    return redirect(url_for(".resume_draft", draft_id=draft.id))


@bp.get("/drafts/<uuid:draft_id>")
@signed_in("caseworker", "org_admin")
def resume_draft(draft_id, principal):
    draft, saved = drafts.read_draft(principal, str(draft_id))
    found = directory.get_service(draft.service_id)
    values = form.values_of_draft(saved)
    values["draft_id"] = draft.id
    return _referral_form(principal, found, draft.step, values, draft=draft)


@bp.post("/drafts/<uuid:draft_id>/discard")
@signed_in("caseworker", "org_admin")
def discard_draft(draft_id, principal):
    check_csrf()
    drafts.discard_draft(principal, str(draft_id))
    db.session.commit()
    flash(_("Draft deleted."), "success")
    return redirect(url_for(".home"))


@bp.get("/referrals/<uuid:referral_id>")
@signed_in()
def referral_page(referral_id, principal):
    referral, standing, personal, extras = service.read_referral(principal, str(referral_id))
    timeline = service.events(principal, referral.id)
    db.session.commit()
    names = _names_for([referral])
    names.update(
        directory.display_names(
            organization_ids=[e.organization_id for e in timeline if e.organization_id]
        )
    )
    return render_template(
        "referrals/referral.html",
        referral=referral,
        standing=standing,
        personal=personal,
        extras=extras,
        timeline=timeline,
        names=names,
        allowed=service.allowed_transitions(standing, referral.status),
        may_withdraw_consent=standing == "sender" and referral.consent_status == "active",
        may_erase=_may_erase(standing, referral),
        drastic=DRASTIC_STATUSES,
        personal_categories=PERSONAL_CATEGORIES,
        people=contacts.people_to_call(referral),
        assignable=_assignable(principal, standing, referral),
    )


def _assignable(principal, standing, referral):
    """Whom the receiving organisation's caseworkers and admins may assign it to; else none."""
    if (
        standing != "receiver"
        or referral.status not in OPEN_STATUSES
        or not principal.has_role(*service.ASSIGNABLE_ROLES)
    ):
        return []
    return service.assignable_users(referral.receiver_organization_id)


def _back_to(referral_id, problem=None):
    if problem is not None:
        db.session.rollback()
        messages = [problem.detail, *(e["message"] for e in problem.errors or [])]
        flash(" ".join(translate(m) for m in messages), "error")
    return redirect(url_for(".referral_page", referral_id=referral_id))


def reference_of(referral):
    """The referral's reference (MT-26-0042), which the person erasing its data types; the
    first part of its id for a referral that has none (one a peer hub sent without it)."""
    return referral.reference or referral.id.split("-")[0].upper()


def _may_erase(standing, referral):
    return standing == "sender" and referral.erased_at is None


def _status_confirmation(referral, status, reason, version):
    """The page asking once more before a decline or a withdrawal."""
    names = _names_for([referral])
    back = url_for(".referral_page", referral_id=referral.id)
    action = url_for(".change_status", referral_id=referral.id)
    fields = {"status": status, "version": version, "reason": reason or ""}
    if status == "declined":
        sender = names.get(referral.sender_organization_id, "")
        return confirmation_page(
            action,
            title=_("Decline this referral?"),
            happens=[
                _(
                    "The referral is declined because: %(reason)s.",
                    reason=decline_reason_labels()[reason],
                ),
                _(
                    "%(organization)s is told at once and can refer the child elsewhere.",
                    organization=sender,
                ),
            ],
            lasting=[
                _("A declined referral cannot be accepted later: the sender must send a new one."),
            ],
            button=_("Yes, decline the referral"),
            back=back,
            fields=fields,
        )
    receiver = names.get(referral.receiver_organization_id, "")
    return confirmation_page(
        action,
        title=_("Withdraw this referral?"),
        happens=[
            _(
                "%(organization)s is told at once that the referral is withdrawn, and can no "
                "longer act on it.",
                organization=receiver,
            ),
        ],
        lasting=[
            _(
                "A withdrawn referral cannot be reopened: to refer the child again, send a "
                "new referral."
            ),
        ],
        button=_("Yes, withdraw the referral"),
        back=back,
        fields=fields,
    )


@bp.get("/referrals/<uuid:referral_id>/status")
@signed_in()
def confirm_status(referral_id, principal):
    """Ask once more before a decline or a withdrawal; other moves need no second look."""
    referral, standing, _personal, _extras = service.read_referral(
        principal, str(referral_id), audit_read=False
    )
    status, reason = request.args.get("status"), request.args.get("reason")
    allowed = service.allowed_transitions(standing, referral.status)
    if status not in DRASTIC_STATUSES or status not in allowed:
        return _back_to(referral_id)
    if status == "declined" and reason not in decline_reason_labels():
        flash(_("Choose why you decline before you go on."), "error")
        return _back_to(referral_id)
    version = request.args.get("version") or referral.version
    return _status_confirmation(referral, status, reason, version)


@bp.post("/referrals/<uuid:referral_id>/status")
@signed_in()
def change_status(referral_id, principal):
    check_csrf()
    if request.form.get("status") in DRASTIC_STATUSES and not confirmed():
        return ask_first()
    fields = {k: v for k, v in request.form.items() if k in ("status", "reason", "outcome") and v}
    try:
        change = StatusChange().load(fields)
        version = int(request.form.get("version", ""))
        service.change_status(principal, str(referral_id), version, **change)
    except (ValidationError, ValueError):
        db.session.rollback()
        flash(_("Choose what happened before you save."), "error")
        return _back_to(referral_id)
    except Problem as problem:
        return _back_to(referral_id, problem)
    db.session.commit()
    flash(
        _("Saved: the referral is now %(status)s.", status=status_labels()[change["status"]]),
        "success",
    )
    return _back_to(referral_id)


@bp.post("/referrals/<uuid:referral_id>/assignment")
@signed_in("caseworker", "org_admin")
def assign(referral_id, principal):
    check_csrf()
    user_id = request.form.get("user_id", "").strip()
    try:
        uuid.UUID(user_id)
    except ValueError:
        flash(_("Choose a caseworker before you save."), "error")
        return _back_to(referral_id)
    try:
        referral = service.assign(principal, str(referral_id), user_id)
    except Problem as problem:
        return _back_to(referral_id, problem)
    assignee = db.session.get(User, referral.assigned_to_user_id)
    name = assignee.name or assignee.email
    db.session.commit()
    flash(_("Assigned to %(name)s.", name=name), "success")
    return _back_to(referral_id)


def _consent_confirmation(referral, erase, error=None):
    """The page asking once more before consent is withdrawn, or the data erased for good."""
    receiver = _names_for([referral]).get(referral.receiver_organization_id, "")
    action = url_for(".withdraw_consent", referral_id=referral.id)
    back = url_for(".referral_page", referral_id=referral.id)
    if not erase:
        return confirmation_page(
            action,
            title=_("Withdraw consent?"),
            happens=[
                _(
                    "%(organization)s no longer sees the child's name, contacts, health or "
                    "history. The referral itself goes on.",
                    organization=receiver,
                ),
            ],
            lasting=[
                _(
                    "Consent cannot be given again on this referral: a new consent needs a new "
                    "referral."
                ),
            ],
            button=_("Yes, withdraw consent"),
            back=back,
        )
    return confirmation_page(
        action,
        title=_("Erase the personal information?"),
        happens=[
            _("Consent is withdrawn, if it is not already."),
            _(
                "The child's name, contacts, health and history are deleted from the hub, here "
                "and for %(organization)s. The referral's status and dates stay.",
                organization=receiver,
            ),
        ],
        lasting=[
            _("Nobody can bring the erased information back, not even an administrator."),
        ],
        button=_("Yes, erase it for good"),
        back=back,
        fields={"erase": "yes"},
        typed=reference_of(referral),
        error=error,
    )


@bp.get("/referrals/<uuid:referral_id>/consent/withdraw")
@signed_in()
def confirm_consent_withdrawal(referral_id, principal):
    """Ask once more before withdrawing consent; erasing also asks for the reference."""
    referral, standing, _personal, _extras = service.read_referral(
        principal, str(referral_id), audit_read=False
    )
    erase = request.args.get("erase") == "yes"
    allowed = _may_erase(standing, referral) if erase else referral.consent_status == "active"
    if standing != "sender" or not allowed:
        return _back_to(referral_id)
    return _consent_confirmation(referral, erase)


@bp.post("/referrals/<uuid:referral_id>/consent/withdraw")
@signed_in()
def withdraw_consent(referral_id, principal):
    check_csrf()
    if not confirmed():
        return ask_first()
    erase = request.form.get("erase") == "yes"
    if erase:
        referral, _standing, _personal, _extras = service.read_referral(
            principal, str(referral_id), audit_read=False
        )
        if not typed_matches(reference_of(referral)):
            error = _("This is not the referral's reference: nothing was erased.")
            return _consent_confirmation(referral, erase, error)
    try:
        service.withdraw_consent(principal, str(referral_id), erase=erase)
    except Problem as problem:
        return _back_to(referral_id, problem)
    db.session.commit()
    if erase:
        # Neutral, not green: something was destroyed, which is nothing to celebrate.
        flash(_("The personal information was erased from the hub."), "notice")
    else:
        flash(
            _("Consent withdrawn: the receiving organisation no longer sees personal data."),
            "notice",
        )
    return _back_to(referral_id)
