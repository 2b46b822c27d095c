"""References people quote on the phone: the sender's short code, the year, a count (MT-26-0042).

The count is per sending organisation and year (Asia/Phnom_Penh), kept on the organisation's
row: taking the next one is one UPDATE ... RETURNING, which holds that row until the referral's
transaction ends, so two referrals of one sender never share a number and a rolled-back one
gives its number back. Other senders never wait. An organisation gets its short code at its
first referral: its alternate name when that is an acronym (M'Lop Tapang's "MT"), else the
initials of its name, with a digit added when another organisation has it already.
"""

import re
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import bindparam, case, select, update
from sqlalchemy.exc import IntegrityError

from .. import clock
from ..directory.models import Organization
from ..extensions import db

ACRONYM = re.compile(r"(?:^|\()([A-Z]{2,6})\)?$")
PATTERN = re.compile(r"^[A-Z]{2,6}[0-9]?-[0-9]{2}-[0-9]{4,}$")


def short_code(name, alternate_name=None):
    """The organisation's code before any digit that makes it unique."""
    found = ACRONYM.search((alternate_name or "").strip())
    if found:
        return found.group(1)
    initials = "".join(word[0] for word in re.findall(r"[A-Za-z][A-Za-z'\u2019-]*", name)).upper()
    return initials[:6] if len(initials) >= 2 else "ORG"


def normalized(text):
    """A reference as typed (spaces, lower case) in its stored form, or None if it is none."""
    candidate = re.sub(r"\s+", "", text or "").upper()
    return candidate if PATTERN.match(candidate) else None


# Made once, its values bound at each call: an ORM-enabled UPDATE built per call was about a
# fifth of a create's Python time. Prepared: the plan is the primary key's, whatever the values.
TAKE_NEXT = (
    update(Organization.__table__)
    .where(Organization.id == bindparam("organization_id"))
    .values(
        reference_count=case(
            (Organization.reference_year == bindparam("year"), Organization.reference_count + 1),
            else_=1,
        ),
        reference_year=bindparam("year"),
    )
    .returning(Organization.short_code, Organization.reference_count)
    .execution_options(prepared=True)
)


def next_reference(organization_id):
    """The next reference of this sender, in the current transaction."""
    year = clock.now().astimezone(ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])).year
    code, count = (
        db.session.connection()
        .execute(TAKE_NEXT, {"organization_id": organization_id, "year": year})
        .one()
    )
    return f"{code or _give_code(organization_id)}-{year % 100:02d}-{count:04d}"


def _give_code(organization_id):
    """Give the organisation its short code, the first free of CODE, CODE2, ... CODE9."""
    name, alternate = db.session.execute(
        select(Organization.name, Organization.alternate_name).where(
            Organization.id == organization_id
        )
    ).one()
    base = short_code(name, alternate)
    for candidate in (base, *(f"{base}{digit}" for digit in range(2, 10))):
        try:
            with db.session.begin_nested():  # another organisation may take it meanwhile
                db.session.execute(
                    update(Organization)
                    .where(Organization.id == organization_id)
                    .values(short_code=candidate)
                    .execution_options(synchronize_session=False, publishes=False)
                )
            return candidate
        except IntegrityError:
            continue
    raise RuntimeError(f"No short code left for {base!r}; set one by hand.")
