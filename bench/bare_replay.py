"""The database's share of a referral create, a status change and a referral list, alone: a
bare Flask app like the baseline's (shared/baselines/bare_app.py) that replays, in one
transaction through psycopg2, the statements the hub sent for one of them (bench/write_path.py
captures them): `POST /create` with a new referral id, reference and Idempotency-Key each
time; `POST /status/<id>` on the referral named, one of copies at version 1 made for it;
`GET /list`, the page's rows as JSON objects of their columns (orjson). No token, validation,
encryption, ORM or presentation: what the hub's request costs above this is its own Python.

Each statement is prepared once per connection, as the hub's marked statements are
(referral_hub/prepared.py, whose text-to-EXECUTE step this app borrows): the best the database
can do with them."""

import itertools
import os
import pickle
import uuid
from pathlib import Path

import orjson
import psycopg2.pool
from flask import Flask, Response, request

from referral_hub.prepared import executed

CREATE, STATUS, LIST = (
    pickle.loads(Path(os.environ[f"BARE_{name}_STATEMENTS"]).read_bytes())
    for name in ("CREATE", "STATUS", "LIST")
)
app = Flask(__name__)
pool = None
numbers = itertools.count()
prepared = {}  # connection -> its prepared statements


def connection_pool():
    global pool
    if pool is None:
        pool = psycopg2.pool.SimpleConnectionPool(1, 4, os.environ["BASELINE_DSN"])
    return pool


def _replay(captured, values):
    """The captured statements in one transaction, each value of the captured request that
    `values` names replaced by this request's; the last one's rows, as dicts."""
    connection = connection_pool().getconn()
    try:
        with connection, connection.cursor() as cursor:
            kept = prepared.setdefault(connection, {})
            for statement, parameters in captured["statements"]:
                fresh = {
                    name: values.get(value, value) if isinstance(value, str) else value
                    for name, value in parameters.items()
                }
                cursor.execute(executed(cursor, kept, statement), fresh)
                rows = cursor.fetchall() if cursor.description else []
            names = [column.name for column in cursor.description or ()]
    finally:
        connection_pool().putconn(connection)
    return [dict(zip(names, row, strict=True)) for row in rows]


@app.post("/create")
def create():
    request.get_json()
    referral_id = str(uuid.uuid4())
    reference = f"BARE-{os.getpid()}-{next(numbers)}"
    _replay(
        CREATE,
        {CREATE["id"]: referral_id, CREATE["reference"]: reference, CREATE["key"]: referral_id},
    )
    return {"id": referral_id}, 201


@app.post("/status/<referral_id>")
def change_status(referral_id):
    request.get_json()
    _replay(STATUS, {STATUS["id"]: referral_id})
    return {"id": referral_id}


@app.get("/list")
def list_referrals():
    """orjson, as the hub writes its JSON: the fastest way from rows to a body."""
    return Response(orjson.dumps({"items": _replay(LIST, {})}), mimetype="application/json")


@app.get("/hello")
def hello():
    return {"ok": True}
