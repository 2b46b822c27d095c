"""The database's share of a referral create, alone: a bare Flask app like the baseline's
(shared/baselines/bare_app.py) whose POST /create replays, in one transaction through psycopg2,
the statements the hub sent for one create (bench/write_path.py captures them), each time with
a new referral id, reference and Idempotency-Key. No token, validation, encryption, ORM or
answer to build: what the hub's create costs above this is its own Python.

Each statement is prepared once per connection, as the hub's marked statements are
(referral_hub/prepared.py, whose text-to-EXECUTE step this app borrows): the best the database
can do with them."""

import itertools
import os
import pickle
import uuid
from pathlib import Path

import psycopg2.pool
from flask import Flask, request

from referral_hub.prepared import executed

CAPTURED = pickle.loads(Path(os.environ["BARE_CREATE_STATEMENTS"]).read_bytes())
app = Flask(__name__)
pool = None
numbers = itertools.count()
prepared = {}  # connection -> its prepared statements


def connection_pool():
    global pool
    if pool is None:
        pool = psycopg2.pool.SimpleConnectionPool(1, 4, os.environ["BASELINE_DSN"])
    return pool


def _fresh():
    """The captured create's own values -> this request's."""
    referral_id = str(uuid.uuid4())
    return {
        CAPTURED["id"]: referral_id,
        CAPTURED["reference"]: f"BARE-{os.getpid()}-{next(numbers)}",
        CAPTURED["key"]: referral_id,
    }


@app.post("/create")
def create():
    request.get_json()
    values = _fresh()
    connection = connection_pool().getconn()
    try:
        with connection, connection.cursor() as cursor:
            for statement, parameters in CAPTURED["statements"]:
                fresh = {
                    name: values.get(value, value) if isinstance(value, str) else value
                    for name, value in parameters.items()
                }
                kept = prepared.setdefault(connection, {})
                cursor.execute(executed(cursor, kept, statement), fresh)
                if cursor.description:
                    cursor.fetchall()
    finally:
        connection_pool().putconn(connection)
    return {"id": values[CAPTURED["id"]]}, 201


@app.get("/hello")
def hello():
    return {"ok": True}
