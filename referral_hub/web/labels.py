"""What the codes of the hub are called on the pages, in the reader's language."""

from flask_babel import gettext as _


def capacity_labels():
    return {
        "available": _("Places available"),
        "waitlist": _("Waiting list"),
        "full": _("Full"),
        "assessment_required": _("Assessment needed first"),
    }


def status_labels():
    return {
        "sent": _("Sent"),
        "received": _("Received"),
        "accepted": _("Accepted"),
        "declined": _("Declined"),
        "in_progress": _("In progress"),
        "completed": _("Completed"),
        "withdrawn": _("Withdrawn"),
        "expired": _("Expired"),
    }


def role_labels():
    return {
        "caseworker": _("Caseworker"),
        "org_admin": _("Organisation admin"),
        "coordinator": _("Network coordinator"),
        "focal_point": _("Government focal point"),
    }


def standing_labels():
    """Which side of a referral someone is on, as a rule's message names it."""
    return {"sender": _("sender"), "receiver": _("receiver")}


def urgency_labels():
    return {"emergency": _("Emergency"), "high": _("High"), "normal": _("Normal")}


def urgency_hints():
    return {
        "emergency": _("The child is in danger now: the answer is due within hours."),
        "high": _("The answer is due within a day."),
        "normal": _("The answer is due within 3 working days."),
    }


def sex_labels():
    return {"female": _("Female"), "male": _("Male"), "other": _("Other")}


def sex_options(codes):
    labels = sex_labels()
    return [(code, labels[code]) for code in codes]


def eligibility(rule):
    """'Ages 10 to 18, boys and men only' in words a caseworker reads at a glance; rule is a
    service's eligibility (minimum_age, maximum_age, sex), as documents and models give it."""
    low, high = rule["minimum_age"], rule["maximum_age"]
    if low is not None and high is not None:
        ages = _("Ages %(low)s to %(high)s", low=low, high=high)
    elif low is not None:
        ages = _("From age %(low)s", low=low)
    elif high is not None:
        ages = _("Up to age %(high)s", high=high)
    else:
        ages = _("All ages")
    sexes = {"female": _("girls and women only"), "male": _("boys and men only")}
    return f"{ages}, {sexes[rule['sex']]}" if rule["sex"] else ages


def decline_reason_labels():
    return {
        "no_capacity": _("No place free"),
        "not_eligible": _("Not eligible for this service"),
        "out_of_area": _("Outside our area"),
        "could_not_contact": _("Could not contact the person"),
        "other": _("Another reason"),
    }


def outcome_labels():
    return {
        "service_provided": _("Service provided"),
        "partially_provided": _("Service partly provided"),
        "no_longer_needed": _("No longer needed"),
        "could_not_contact": _("Could not contact the person"),
        "referred_elsewhere": _("Referred elsewhere"),
    }


def consent_giver_labels():
    return {
        "subject": _("The child or person themselves"),
        "parent": _("A parent"),
        "guardian": _("A guardian or caregiver"),
        "best_interests": _("Nobody: shared in the child's best interests (emergencies only)"),
    }


def consent_method_labels():
    return {
        "verbal": _("Spoken"),
        "written": _("Written and signed"),
        "thumbprint": _("Thumbprint"),
        "electronic": _("Electronic"),
    }


def category_explanations():
    """What each kind of personal data holds and who sees it, in plain words."""
    return {
        "identity": (
            _("Name and date of birth"),
            _(
                "Seen by the organisation you refer to. Government focal points see it only if "
                "you also tick the box below."
            ),
        ),
        "contact": (
            _("Phone, address and caregiver"),
            _("Seen by the organisation you refer to, so they can reach the family."),
        ),
        "health": (
            _("Health and disability"),
            _("Seen by the organisation you refer to, to care for the person safely."),
        ),
        "case_history": (
            _("Why you refer and the risks"),
            _("Seen by the organisation you refer to, so nobody has to ask the child again."),
        ),
    }


def event_labels():
    return {
        "referral.created": _("Referral sent"),
        "referral.status_changed": _("Status changed"),
        "referral.consent_withdrawn": _("Consent withdrawn"),
        "referral.consent_expired": _("Consent expired"),
        "referral.overdue": _("Marked overdue"),
        "referral.escalated": _("Escalated to the coordinators"),
    }


def action_labels():
    """The button that moves a referral to each status."""
    return {
        "received": _("Mark as received"),
        "accepted": _("Accept"),
        "declined": _("Decline"),
        "in_progress": _("Start the service"),
        "completed": _("Complete"),
        "withdrawn": _("Withdraw the referral"),
    }


def personal_field_labels():
    return {
        "given_name": _("Given name"),
        "family_name": _("Family name"),
        "other_names": _("Other names"),
        "date_of_birth": _("Date of birth"),
        "phone": _("Phone"),
        "address": _("Address"),
        "caregiver_name": _("Caregiver's name"),
        "caregiver_phone": _("Caregiver's phone"),
        "caregiver_relationship": _("Caregiver is the person's"),
        "notes": _("Health notes"),
        "disability": _("Disability"),
        "reason": _("Why referred"),
        "summary": _("Summary"),
        "risks": _("Risks"),
    }


def code_labels():
    """The codes a rule's message may be built from (statuses, roles...), by their label."""
    return {
        **decline_reason_labels(),
        **outcome_labels(),
        **sex_labels(),
        **urgency_labels(),
        **status_labels(),
        **role_labels(),
        **standing_labels(),
    }


def forward_labels():
    return {
        "create": _("Forwarded"),
        "withdraw": _("Withdrawal passed on"),
        "consent_withdraw": _("Withdrawal of consent passed on"),
        "erase": _("Erasure passed on"),
    }


HELPERS = {
    "forward_labels": forward_labels,
    "capacity_labels": capacity_labels,
    "status_labels": status_labels,
    "role_labels": role_labels,
    "urgency_labels": urgency_labels,
    "urgency_hints": urgency_hints,
    "sex_labels": sex_labels,
    "sex_options": sex_options,
    "eligibility": eligibility,
    "decline_reason_labels": decline_reason_labels,
    "outcome_labels": outcome_labels,
    "consent_giver_labels": consent_giver_labels,
    "consent_method_labels": consent_method_labels,
    "category_explanations": category_explanations,
    "event_labels": event_labels,
    "action_labels": action_labels,
    "personal_field_labels": personal_field_labels,
}
