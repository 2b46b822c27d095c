"""Statements PostgreSQL plans once per connection instead of at every request.

psycopg2 sends each statement as text, which PostgreSQL parses and plans every time: for the
few fixed statements of the hot reads that was most of the database's work (a service read's
two statements: about 0.3 ms of planning for 0.08 ms of executing). A statement built with
`.execution_options(prepared=True)` is PREPAREd on each connection the first time it runs
there and EXECUTEd from then on, its values interpolated by psycopg2 as before. The hub's
connections ask for generic plans (`plan_cache_mode`), made once per statement and connection:
left to choose, PostgreSQL planned a referral list at every call, because it guesses one
reason's rows at a page for each. So mark only statements whose best plan does not depend on
their values. Statements not marked are sent as text and planned each time, as before. SQLite
runs the text.
"""

import re

from sqlalchemy import event, make_url
from sqlalchemy.engine import Engine

PLACEHOLDER = re.compile(r"%\((\w+)\)s")
KEPT_PER_CONNECTION = 200  # then they are all deallocated and prepared again as used
GENERIC_PLANS = "-c plan_cache_mode=force_generic_plan"


def _prepare(cursor, prepared, statement):
    """PREPARE the statement on this connection; its name and its parameters in order."""
    if len(prepared) >= KEPT_PER_CONNECTION:
        cursor.execute("DEALLOCATE ALL")
        prepared.clear()
    numbers = {}

    def number(match):
        return f"${numbers.setdefault(match.group(1), len(numbers) + 1)}"

    body = PLACEHOLDER.sub(number, statement).replace("%%", "%")
    name = f"hub_{len(prepared)}"
    cursor.execute(f"PREPARE {name} AS {body}")
    prepared[statement] = name, list(numbers)
    return prepared[statement]


def _execute_prepared(connection, cursor, statement, parameters, context, executemany):
    if (
        executemany
        or context is None
        or not context.execution_options.get("prepared")
        or connection.dialect.name != "postgresql"
    ):
        return statement, parameters
    prepared = connection.connection.info.setdefault("hub_prepared", {})
    name, names = prepared.get(statement) or _prepare(cursor, prepared, statement)
    if not names:
        return f"EXECUTE {name}", parameters
    return f"EXECUTE {name} ({', '.join(f'%({n})s' for n in names)})", parameters


def configure(app):
    """Generic plans for the prepared statements of this app's PostgreSQL connections; set when
    a connection opens, so no request pays a round trip for it (call before the database is
    bound)."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        return
    engine_options = app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {})
    connect_args = engine_options.get("connect_args", {})
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    given = connect_args.get("options") or url.query.get("options") or ""  # kept, not replaced
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        **engine_options,
        "connect_args": {**connect_args, "options": f"{given} {GENERIC_PLANS}".strip()},
    }


def register():
    """Run the marked statements as prepared ones on every engine (once per process)."""
    if not event.contains(Engine, "before_cursor_execute", _execute_prepared):
        event.listen(Engine, "before_cursor_execute", _execute_prepared, retval=True)
