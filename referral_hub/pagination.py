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


def _decode(cursor):
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not (
            isinstance(values, list)
            and len(values) == 2
            and all(isinstance(v, str) for v in values)
        ):
            raise ValueError
        return values
    except (ValueError, UnicodeError) as exc:
        raise ValidationError({"cursor": ["Not a cursor this hub issued."]}) from exc


def _encode(values):
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode()


def paginate(query, sort_column, id_column, args):
    """A page of rows ordered by (sort_column, id) after the cursor, and the next cursor."""
    query = query.order_by(sort_column, id_column)
    if args["cursor"]:
        query = query.where(tuple_(sort_column, id_column) > tuple(_decode(args["cursor"])))
    rows = db.session.scalars(query.limit(args["limit"] + 1)).all()
    more = len(rows) > args["limit"]
    rows = rows[: args["limit"]]
    last = rows[-1] if more else None
    next_cursor = (
        _encode([getattr(last, sort_column.key), getattr(last, id_column.key)]) if last else None
    )
    return rows, next_cursor
