"""Reading plain rows: a select of columns run on the session's connection, in its transaction,
without the ORM's result handling (the ORM's share was about a third of the Python time of a
page of 50 services or referrals)."""

from .extensions import db


def read_rows(statement, parameters=None):
    """The result of a select of columns (no ORM entities); nothing pending is flushed first."""
    return db.session.connection().execute(statement, parameters)
