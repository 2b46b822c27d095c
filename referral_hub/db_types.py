"""Column types and helpers shared by every model."""

import json
import uuid
from datetime import UTC

import orjson
from sqlalchemy import DateTime, String, TypeDecorator
from sqlalchemy.orm import mapped_column

from . import clock


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on PostgreSQL and SQLite alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def result_processor(self, dialect, coltype):
        """None on PostgreSQL, whose driver reads timestamptz as aware datetimes already: a
        Python call saved for each time of each row (450 in a list of 50 referrals)."""
        if dialect.name == "postgresql":
            return None
        return super().result_processor(dialect, coltype)


def read_json(text):
    """A JSON column's value: orjson reads it several times faster than the standard library
    (the three JSON columns of 50 referrals were a tenth of a list's time); what orjson refuses
    and the standard library wrote (NaN, an integer past 64 bits) is read as before."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def new_id():
    return str(uuid.uuid4())


def id_column():
    """A UUID primary key stored as text, portable across both databases."""
    return mapped_column(String(36), primary_key=True, default=new_id)


def created_column():
    return mapped_column(UTCDateTime(), nullable=False, default=clock.now)


def updated_column():
    return mapped_column(UTCDateTime(), nullable=False, default=clock.now, onupdate=clock.now)


# Indexes that migrations create by hand for one database only (expression indexes).
DATABASE_ONLY_INDEXES = {"ix_services_search_fts"}


def include_in_autogenerate(obj, name, type_, reflected, compare_to):
    """Keep autogenerate from dropping the hand-made, database-specific indexes."""
    return not (type_ == "index" and name in DATABASE_ONLY_INDEXES)
