"""Writing rows whose uniqueness the database guards."""

import functools

from sqlalchemy import inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import make_transient_to_detached

from .errors import Conflict
from .extensions import db


def flush_or_conflict(detail, field):
    """Flush; a broken unique constraint becomes a 409 naming the field, and nothing is written."""
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(detail, errors=[{"field": field, "message": "Taken."}]) from None


def insert(row):
    """INSERT the new ORM object `row` now, in one statement; returns it, in the session as
    written (its generated id and defaults read back). Core, not a flush of the unit of work,
    which cost about three times more for one row."""
    return _written(row, ())


def insert_unless_taken(row, unique_columns):
    """Like insert(), unless a row with its values of `unique_columns` (a unique constraint)
    exists: then nothing is written and None is returned. On PostgreSQL a concurrent insert of
    the same values is waited for, so there is no error to recover from and no SELECT before."""
    return _written(row, tuple(unique_columns))


def _written(row, unique_columns):
    mapper = inspect(type(row))
    values = {
        attribute.key: getattr(row, attribute.key)
        for attribute in mapper.column_attrs
        if attribute.key in row.__dict__
    }
    dialect = db.session.get_bind().dialect.name
    statement = _insert(mapper.local_table, unique_columns, dialect)
    written = db.session.connection().execute(statement, values).first()
    if written is None:
        return None
    for attribute in mapper.column_attrs:  # what the database filled in: id, defaults
        if attribute.key not in values:
            setattr(row, attribute.key, written._mapping[attribute.columns[0]])
    make_transient_to_detached(row)  # as if just loaded: nothing left to flush
    db.session.add(row)
    return row


@functools.cache
def _insert(table, unique_columns, dialect):
    """The statement, made once: its values come as parameters, so it is compiled once too, and
    prepared on each connection (an INSERT's plan does not depend on its values)."""
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[dialect]
    statement = insert(table).execution_options(prepared=True)
    if unique_columns:
        statement = statement.on_conflict_do_nothing(index_elements=list(unique_columns))
    return statement.returning(*table.c)
