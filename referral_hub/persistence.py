"""Writing rows whose uniqueness the database guards."""

import functools

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
    dialect = db.session.get_bind().dialect.name
    statement = _insert_unless_taken(model, tuple(unique_columns), dialect)
    return db.session.scalars(statement, [values]).one_or_none()


@functools.cache
def _insert_unless_taken(model, unique_columns, dialect):
    """The statement, made once: its values come as parameters, so it is compiled once too."""
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[dialect]
    return (
        insert(model).on_conflict_do_nothing(index_elements=list(unique_columns)).returning(model)
    )
