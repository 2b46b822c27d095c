"""Writing rows whose uniqueness the database guards."""

from sqlalchemy import inspect
from sqlalchemy.dialects import postgresql, sqlite
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


def insert_unless_taken(row, unique_columns):
    """INSERT the new ORM object `row` in one statement unless a row with its values of
    `unique_columns` (a unique constraint) exists; returns the inserted row, now in the
    session, or None. On PostgreSQL a concurrent insert of the same values is waited for, so
    there is no error to recover from and no SELECT before."""
    model = type(row)
    values = {
        column.key: getattr(row, column.key)
        for column in inspect(model).column_attrs
        if column.key in row.__dict__
    }
    dialect = {"postgresql": postgresql, "sqlite": sqlite}[db.session.get_bind().dialect.name]
    statement = (
        dialect.insert(model)
        .values(values)
        .on_conflict_do_nothing(index_elements=unique_columns)
        .returning(model)
    )
    return db.session.scalar(statement)
