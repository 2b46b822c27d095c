"""One cursor pagination for every list: keyset on (sort column, id), opaque cursors."""

import base64
import json
import math
from datetime import datetime

from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import BigInteger, select, tuple_, union_all

from .extensions import db
from .request_handling import unstorable
from .rows import read_rows

MAX_LIMIT = 100
# Page numbers of the numbered (HSDS) lists: a hundred million rows at 100 a page, past any
# directory, while the offset still fits every database's integers.
MAX_PAGE = 1_000_000


class PageArgs(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_LIMIT))
    cursor = fields.String(load_default=None)


def page_number():
    """The page field of a numbered list: from 1, bounded so its offset fits a database."""
    return fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))


def _refuse_constant(name):
    raise ValueError(f"{name} is not a cursor value")


def _decode(cursor, ordering):
    """The (sort value, id) after which the page starts, if the cursor came from this ordering."""
    try:
        values = json.loads(
            base64.urlsafe_b64decode(cursor.encode()), parse_constant=_refuse_constant
        )
        if not (isinstance(values, list) and len(values) == 3 and values[0] == ordering):
            raise ValueError
        return values[1:]
    except (ValueError, UnicodeError, RecursionError) as exc:
        raise ValidationError(
            {"cursor": ["Not a cursor of this list; start again without it."]}
        ) from exc


def _column_value(value, column):
    """The cursor's value if it has the column's type (PostgreSQL refuses to compare a text
    column with a number, and every database an integer wider than its own), else ValueError."""
    kind = getattr(column.type, "impl", column.type).python_type  # a TypeDecorator's own type
    if isinstance(value, bool):
        raise ValueError("a boolean is no cursor value")
    if kind is int:
        bits = 63 if isinstance(column.type, BigInteger) else 31
        if not (isinstance(value, int) and -(2**bits) <= value < 2**bits):
            raise ValueError("not an integer of the column's size")
    elif kind is float:
        if not (isinstance(value, int | float) and math.isfinite(value)):
            raise ValueError("not a finite number")
    elif kind is datetime:
        if not (isinstance(value, datetime) and value.tzinfo is not None):
            raise ValueError("not a time with its offset")
    elif not isinstance(value, str) or unstorable(value):
        raise ValueError("not a text")
    return value


def _encode(ordering, values):
    return base64.urlsafe_b64encode(json.dumps([ordering, *values]).encode()).decode()


def paginate(
    query,
    sort_column,
    id_column,
    args,
    sort_value=None,
    ordering=None,
    parse=None,
    descending=False,
    plain_rows=False,
    any_of=(),
):
    """A page of rows ordered by (sort_column, id) after the cursor, and the next cursor: the
    query's objects when it selects one entity or column, else its rows. With plain_rows the
    query, a select of columns, is read as plain rows (rows.read_rows).

    sort_column may be an expression; sort_value then computes it for a row (as JSON), and parse
    turns it back into the column's type. A cursor names its ordering, so one list's cursor is
    refused by another. `descending` lists the largest first (the newest, by a time or a seq).
    Rows must also match one of the conditions `any_of`, when it is given (see _page_of_any).
    """
    ordering = ordering or f"{id_column.table.name}.{sort_column.key}"
    ordering += " desc" if descending else ""
    sort_value = sort_value or (lambda row: getattr(row, sort_column.key))
    order = (sort_column.desc(), id_column.desc()) if descending else (sort_column, id_column)
    if args["cursor"]:
        after, after_id = _decode(args["cursor"], ordering)
        try:
            after = _column_value(parse(after) if parse else after, sort_column)
            after_id = _column_value(after_id, id_column)
        except (TypeError, ValueError) as exc:
            raise ValidationError({"cursor": ["Not a cursor of this list."]}) from exc
        key = tuple_(sort_column, id_column)
        query = query.where(key < (after, after_id) if descending else key > (after, after_id))
    query = _page_of_any(query, any_of, id_column, order, args["limit"] + 1).order_by(*order)
    execute = read_rows if plain_rows else db.session.execute
    result = execute(query.limit(args["limit"] + 1))
    rows = result.all()
    if len(result.keys()) == 1:
        rows = [row[0] for row in rows]
    more = len(rows) > args["limit"]
    rows = rows[: args["limit"]]
    last = rows[-1] if more else None
    next_cursor = (
        _encode(ordering, [sort_value(last), getattr(last, id_column.key)]) if last else None
    )
    return rows, next_cursor


def _page_of_any(query, conditions, id_column, order, size):
    """The query limited to rows matching any of the conditions. With several, each one's first
    page is read apart and the page is chosen among those: `a OR b` in one scan would read and
    sort every row that matches either (every referral an organisation ever sent), where each
    alone reads its first rows from an index in order."""
    if len(conditions) < 2:
        return query.where(*conditions)
    firsts = [
        query.with_only_columns(id_column).where(condition).order_by(*order).limit(size).subquery()
        for condition in conditions
    ]
    return query.where(id_column.in_(union_all(*(select(first.c[0]) for first in firsts))))
