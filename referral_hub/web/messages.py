"""Messages written in the rules, the settings and marshmallow that the pages show.

They stay in English in the code and the API; the pages pass them through `translate` when
they show them. Fixed ones are listed here, which puts them in the Khmer catalog, and a test
checks each one still exists where it comes from. Those built from values are `N_` messages
(`referral_hub.messages`), which Babel finds where they are written.
"""

from flask_babel import gettext
from flask_babel import lazy_gettext as _l

from ..messages import Message, spelled
from .labels import code_labels


def translate(message):
    """A message of the rules in the page's language, its codes named by their labels."""
    if not isinstance(message, Message):
        return gettext(message)
    labels = code_labels()

    def name(value):
        return labels.get(value, value) if isinstance(value, str) else value

    return gettext(message.msgid, **{k: spelled(v, name) for k, v in message.values.items()})


SHOWN_ON_PAGES = (
    # config.SCOPES, on the approval and API client pages
    _l("Search and read the service directory"),
    _l("Change the directory entries you are allowed to change"),
    _l("Read referrals your organisation sent or received"),
    _l("Send referrals and change their status"),
    _l("Manage your organisation's status callbacks"),
    _l("Read network figures you are entitled to"),
    _l("Manage your organisation's users and API clients (admins only)"),
    # database_outage.DatabaseUnavailable, on the error page
    _l("The hub cannot reach its database just now; try again shortly."),
    # service rules
    _l("A user with this email exists already."),
    _l("A focal point covers at least one province."),
    _l("Required for the focal_point role."),
    _l("Required for authorization_code."),
    _l("refresh_token goes with authorization_code."),
    _l("client_credentials needs a confidential client."),
    _l("private_key_jwt needs the client's public keys."),
    _l("The URL must use https."),
    _l("The URL must use http or https."),
    _l("The URL needs a host and no credentials."),
    _l("Cloud metadata addresses are refused."),
    _l("Only a failed delivery is replayed."),
    _l("This client has been revoked."),
    _l("A disabled subscription cannot be paused; resume it first."),
    _l("The current password is not right."),
    _l("Use 12 to 200 characters."),
    _l("Choose a password different from the current one."),
    _l("The two new passwords are not the same."),
    _l("No such user."),
    _l("No such client."),
    _l("No such subscription."),
    _l("No such delivery."),
    _l("No such service."),
    _l("No such organisation."),
    _l("No such referral."),
    _l("No such draft."),
    _l("The first day is after the last day."),
    _l("Choose a period of at most ten years."),
    _l("Choose a month as year-month, for example 2026-03."),
    _l("The name is empty."),
    _l("An organisation with this name exists already."),
    _l("This organisation has a service with this name already."),
    _l("The minimum age is above the maximum age."),
    _l("Identity data is sent but the consent does not cover identity."),
    _l("Consent cannot be obtained in the future."),
    _l("This consent has expired."),
    _l("Sharing in the child's best interests without consent is only for emergencies."),
    _l("Sharing without consent needs a written justification."),
    _l("Give the subject's age or birth year."),
    _l("This district is not in that province."),
    _l("Only the sender and the receiver change a referral."),
    _l("Only the sending organisation records a withdrawal of consent."),
    _l("Consent has been withdrawn already."),
    _l("Another change was saved first; reload the referral."),
    _l("Nothing else may be done with it now."),
    _l("Not yours to change."),
    _l("A completion needs an outcome."),
    _l("This service is not active."),
    _l("This service is not accepting referrals now."),
    _l("This key was used for another request body."),
    _l("You cannot disable your own account."),
    _l("Only the organisation's admins and network coordinators may do this."),
    _l("Unknown province codes."),
    _l("Only coordinators, or the organisation's own admins, edit an organisation."),
    _l("Only coordinators, or the service's own organisation's admins, edit it."),
    _l("The service has invalid fields."),
    _l("The form has expired or did not come from this site; reload the page and try again."),
    _l("A phone number: digits, spaces and + ( ) - only."),
    _l("Only the receiving organisation assigns a referral."),
    _l("Only an open referral is assigned."),
    _l("Choose a caseworker of the receiving organisation."),
    # marshmallow
    _l("Missing data for required field."),
    _l("Not a valid email address."),
    _l("Shorter than minimum length 1."),
    _l("Length must be between 8 and 2000."),
    _l("Not a valid integer."),
    _l("Not a valid boolean."),
    _l("Not a valid URL."),
    _l("Not a valid mapping type."),
    _l("Not a valid date."),
    _l("Not a valid datetime."),
    _l("Must be greater than or equal to 0 and less than or equal to 100000."),
    _l("Must be greater than or equal to 0 and less than or equal to 120."),
    _l("String does not match expected pattern."),
)
