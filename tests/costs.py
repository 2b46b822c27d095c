"""What a request costs the database: the statements and commits it sends (issue 13)."""

from sqlalchemy import event

from referral_hub.extensions import db


def _counting():
    """SQL statements and transactions sent while the block runs."""
    seen = {"statements": 0, "commits": 0}

    def statement(_connection, _cursor, sql, *_args):
        # The deny-list is read again every REVOCATION_CACHE_SECONDS, whatever the request.
        if "token_revocations" not in sql:
            seen["statements"] += 1

    def commit(*_args):
        seen["commits"] += 1

    return seen, statement, commit


def cost(action):
    """(what action() returns, the statements and commits it sent)."""
    seen, statement, commit = _counting()
    engine = db.engine
    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    try:
        result = action()
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "commit", commit)
    return result, seen
