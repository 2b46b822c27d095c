"""One cursor pagination for every list: keyset on (sort column, id), opaque cursors."""

import base64
import json

from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import tuple_

from .extensions import db

MAX_LIMIT = 100


class PageArgs(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_LIMIT))
    cursor = fields.String(load_default=None)


def _decode(cursor, ordering):
    """The (sort value, id) after which the page starts, if the cursor came from this ordering."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not (isinstance(values, list) and len(values) == 3 and values[0] == ordering):
            raise ValueError
        if any(not isinstance(v, str | int | float) or isinstance(v, bool) for v in values[1:]):
            raise ValueError
        return values[1:]
    except (ValueError, UnicodeError) as exc:
        raise ValidationError(
            {"cursor": ["Not a cursor of this list; start again without it."]}
        ) from exc


def _encode(ordering, values):
    return base64.urlsafe_b64encode(json.dumps([ordering, *values]).encode()).decode()


def paginate(query, sort_column, id_column, args, sort_value=None, ordering=None, parse=None):
    """A page of rows ordered by (sort_column, id) after the cursor, and the next cursor: the
    query's objects when it selects one entity or column, else its rows.

    sort_column may be an expression; sort_value then computes it for a row (as JSON), and parse
    turns it back into the column's type. A cursor names its ordering, so one list's cursor is
    refused by another.
    """
    ordering = ordering or f"{id_column.table.name}.{sort_column.key}"
    sort_value = sort_value or (lambda row: getattr(row, sort_column.key))
    query = query.order_by(sort_column, id_column)
    if args["cursor"]:
        after, after_id = _decode(args["cursor"], ordering)
        if parse:
            try:
                after = parse(after)
            except (TypeError, ValueError) as exc:
                raise ValidationError({"cursor": ["Not a cursor of this list."]}) from exc
        query = query.where(tuple_(sort_column, id_column) > (after, after_id))
    result = db.session.execute(query.limit(args["limit"] + 1))
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
