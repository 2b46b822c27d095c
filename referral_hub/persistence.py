"""Writing rows whose uniqueness the database guards."""

from sqlalchemy.exc import IntegrityError

from .errors import Conflict
from .extensions import db


def flush_or_conflict(detail, field):
    """Flush; a broken unique constraint becomes a 409 naming the field, and nothing is written."""
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(detail, errors=[{"field": field, "message": "Taken."}]) from None
