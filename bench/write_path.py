"""Write path benchmark: the referral and directory endpoints beside the bare baseline, under wrk.

What it measures: throughput, p50 and p99 latency, and CPU per request (the server's processes
and the database's backends) of eleven endpoints under the same closed-loop load
(`wrk -t2 -c32 -d10s` by default), on one machine, in one run:

- the bare baseline (shared/baselines: a bare Flask app, same gunicorn settings): `GET /hello`
  and `POST /insert` (one psycopg2 INSERT of a referral-sized body, post.lua's);
- bare create, bare status change and bare list (bench/bare_replay.py, same settings): the
  statements the hub sent for one referral create, one status change and one list of 50,
  captured in this process, replayed by a bare Flask app through psycopg2, prepared; a create
  with a new id, reference and Idempotency-Key each time, a status change on a referral of its
  own (copies made for it), a list answered with its rows as JSON. The database's share of
  each, without the hub's Python (the audit entries wait for the hub's worker to seal them);
- the hub: referral create (POST /api/v1/referrals, a full body with personal data, a new
  Idempotency-Key per request), status change (POST .../status, sent -> received with
  If-Match, each request on a referral of its own), referral read (GET .../{id}, the sender's
  view, audited), referral list (GET /api/v1/referrals, 50 a page), service search (GET
  /api/v1/services, category + province) and service read (GET /api/v1/services/{id}).

How: a throwaway PostgreSQL database; the bare app under gunicorn is loaded first, then the
hub is served as in production, `gunicorn referral_hub.wsgi:app` with the same workers (sync
by default) and one `referral-hub worker` beside it (jobs, callback dispatcher, audit
sequencer), both from this checkout. The directory is the search benchmark's synthetic one
(400 services by default). The hub's clients get real tokens from its /oauth/token (client
credentials): a sending organisation, and the receiving one that owns the service referred
to. The status changes need a referral each: as many as the bare INSERT made in the same
duration, and a quarter more, are copied from one sent through the API (each copy's personal
data encrypted again under its own id, with its `referral.created` event). The requests come
from bench/write_path.lua. The hub's CPU per request is its gunicorn workers', its worker
process's and its database backends', read once the writes have settled (requests queued when
wrk stopped have run, and audit_pending is empty), so the sequencer's sealing counts.

Checks (exit status 1 when one fails): every answer 2xx and no socket error, for every
endpoint; the referrals, referral events and audit entries (audit_entries, plus audit_pending
when it exists) written during each load are what its completed requests make (create 1, 1,
1; status change 0, 1, 1; read 0, 0, 1; the others none), or up to --connections more (requests
in flight when wrk stopped still run), never fewer (the bare INSERT's rows likewise); the
hub's `audit verify` (in-process) reports ok after the create load and after every load. When
the schema has the sequencer (audit_pending, audit_entries.sealed_at), the seal delay
(sealed_at - at) of the entries written during the create load: p50, p95 and max; "n/a"
otherwise. Targets, as PASS/FAIL lines that do not change the exit status: create and status
change at least 50 % of the bare INSERT's throughput; search and service read at least 25 %
of the bare GET's; list at least 15 %; seal delay p95 at most 2 s with verify ok. As figures:
the bare create's and the bare status change's shares of the bare INSERT's throughput, the bare
list's of the bare GET's, and the hub's create's, status change's and list's shares of theirs.

    python bench/write_path.py [--duration 10] [--connections 32] [--threads 2] [--workers 2]
        [--services 400] [--database-url URL] [--keep] [--sabotage [reuse-keys]]

Without --database-url it creates `hub_bench_<random>` on postgresql://postgres@127.0.0.1:5432
and drops it at the end (unless --keep); a --database-url database must be empty.
--sabotage (reuse-keys) sends only 20 Idempotency-Keys per wrk thread during the create load:
the hub answers the repeats from the first referral (200, a replay), every answer is still
2xx, and the count check fails. wrk must be on the PATH (Debian: apt-get install wrk).
"""

import argparse
import contextlib
import json
import math
import os
import pickle
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's hub, in this process as in the servers

import directory_search  # noqa: E402
import harness  # noqa: E402
import requests  # noqa: E402
from sqlalchemy import event, inspect, select, text  # noqa: E402

from referral_hub import create_app, crypto  # noqa: E402
from referral_hub.audit import service as audit_service  # noqa: E402
from referral_hub.auth import service as auth_service  # noqa: E402
from referral_hub.directory import service as directory_service  # noqa: E402
from referral_hub.extensions import db  # noqa: E402
from referral_hub.referrals import service as referral_service  # noqa: E402
from referral_hub.referrals.models import (  # noqa: E402
    PERSONAL_CATEGORIES,
    Referral,
    ReferralEvent,
    data_attribute,
)
from tests.referral_fixtures import referral_body  # noqa: E402

LUA = Path(__file__).with_suffix(".lua")
WRK_TIMEOUT = "10s"  # wrk's default, 2 s, would call a slow answer on a busy machine an error
WARMUP = 10  # requests per endpoint before any load, untimed
COPIES_MARGIN = 2  # referrals for status changes: twice what the bare INSERT does
MIN_COPIES_PER_S = 500
SETTLE_S = 30  # longest wait for the writes to stop and audit_pending to empty
STEADY_S = 1.0  # counts unchanged this long: the queued requests have run
SEARCHES = 50  # distinct search queries, cycled
SERVICE_READS = 200  # distinct services read, cycled
READS = 1000  # distinct referrals read (of those the create load sent), cycled
REUSED_KEYS = 20  # --sabotage reuse-keys: Idempotency-Keys per wrk thread
SEAL_TARGET_P95_S = 2.0
SENDER_SCOPES = "referrals:read referrals:write directory:read"
RECEIVER_SCOPES = "referrals:read referrals:write"


@dataclass(frozen=True)
class Endpoint:
    """One line of the report: what it loads, what each request writes (referrals, referral
    events, audit entries), the bare endpoint it is compared with and its target share of that
    endpoint's throughput (None: no target)."""

    name: str
    writes: tuple = (0, 0, 0)
    bare: str | None = None
    target: float | None = None


BARE_GET = Endpoint("bare GET /hello")
BARE_POST = Endpoint("bare POST /insert")
BARE_CREATE = Endpoint("bare create", (1, 1, 1))
BARE_STATUS = Endpoint("bare status change", (0, 1, 1))
BARE_LIST = Endpoint("bare list")
CREATE = Endpoint("referral create", (1, 1, 1), BARE_POST.name, 0.50)
STATUS = Endpoint("status change", (0, 1, 1), BARE_POST.name, 0.50)
READ = Endpoint("referral read", (0, 0, 1), BARE_GET.name)
LIST = Endpoint("referral list", (0, 0, 0), BARE_GET.name, 0.15)
SEARCH = Endpoint("service search", (0, 0, 0), BARE_GET.name, 0.25)
SERVICE = Endpoint("service read", (0, 0, 0), BARE_GET.name, 0.25)


# --- the database -------------------------------------------------------------------------


@dataclass
class Schema:
    """What this database's audit log has: the sequencer's table and column, or not."""

    pending: bool
    sealed_at: bool

    @classmethod
    def of(cls, engine):
        tables = inspect(engine)
        columns = {column["name"] for column in tables.get_columns("audit_entries")}
        return cls(tables.has_table("audit_pending"), "sealed_at" in columns)


def counts(engine, schema):
    """Rows written so far: referrals, referral events, audit entries (sealed or pending),
    pending audit entries, and the bare baseline's inserts."""
    pending = "(SELECT count(*) FROM audit_pending)" if schema.pending else "0"
    bare = "(SELECT count(*) FROM baseline_referral)"
    with engine.connect() as connection:
        has_bare = inspect(connection).has_table("baseline_referral")
        row = connection.execute(
            text(
                "SELECT (SELECT count(*) FROM referrals), (SELECT count(*) FROM referral_events),"
                f" (SELECT count(*) FROM audit_entries) + {pending}, {pending},"
                f" {bare if has_bare else '0'}"
            )
        ).one()
    return tuple(row)


def settle(engine, schema, sealing):
    """Wait until nothing more is written (requests queued when wrk stopped still run) and,
    when a worker is sealing, audit_pending is empty, at most SETTLE_S; the counts then."""
    deadline = time.monotonic() + SETTLE_S
    last, steady_since = counts(engine, schema), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = counts(engine, schema)
        if now != last:
            last, steady_since = now, time.monotonic()
        elif time.monotonic() - steady_since >= STEADY_S and not (sealing and now[3]):
            break
    return last


def seal_delays(engine, schema, started, ended):
    """sealed_at - at of the entries recorded between the two moments, in seconds: (p50,
    p95, max, entries, entries not sealed), or None when the schema has no sequencer."""
    if not (schema.pending and schema.sealed_at):
        return None
    with engine.connect() as connection:
        delays = connection.execute(
            text(
                "SELECT extract(epoch FROM sealed_at - at) FROM audit_entries"
                " WHERE at >= :started AND at < :ended ORDER BY 1"
            ),
            {"started": started, "ended": ended},
        ).scalars()
        delays = [float(d) if d is not None else None for d in delays]
    sealed = [d for d in delays if d is not None]
    if not sealed:
        return (math.nan, math.nan, math.nan, 0, len(delays))
    p = directory_search.percentile
    return (p(sealed, 50), p(sealed, 95), sealed[-1], len(sealed), len(delays) - len(sealed))


def verify_audit(app):
    """The hub's own check of the audit chain, in-process on this database."""
    with app.app_context():
        result = audit_service.verify()
        db.session.remove()
    return result


# --- the parties and their data -----------------------------------------------------------


@dataclass
class Parties:
    """The sending and the receiving organisation's API clients, and the service referred to."""

    service_id: str
    sender: tuple  # (client id, secret)
    receiver: tuple


def make_parties(app):
    """Two organisations in Banteay Meanchey, the receiver's service open to the fixtures'
    15-year-old boy, and an API client each (as a partner's case system has)."""
    with app.app_context():
        sender, receiver = (
            directory_service.create_organization(
                None, f"Bench {role} {secrets.token_hex(3)}", province="17"
            )
            for role in ("sender", "receiver")
        )
        service = directory_service.create_service(
            None,
            receiver.id,
            {
                "name": "Water Lily House",
                "categories": ["detox"],
                "areas": ["17"],
                "minimum_age": 10,
                "maximum_age": 18,
            },
        )
        db.session.flush()
        clients = [
            auth_service.create_client(
                None,
                organization.id,
                "Bench case system",
                scopes.split(),
                ["client_credentials"],
                "client_secret_basic",
            )
            for organization, scopes in ((sender, SENDER_SCOPES), (receiver, RECEIVER_SCOPES))
        ]
        db.session.commit()
        return Parties(service.id, *((c.client_id, secret) for c, secret in clients))


def token(base_url, client, scope):
    """A real access token from the hub's token endpoint (client credentials)."""
    response = requests.post(
        f"{base_url}/oauth/token",
        data={"grant_type": "client_credentials", "scope": scope},
        auth=client,
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["access_token"]


def copy_referral(app, engine, template_id, count, prefix="CP"):
    """`count` copies of a referral sent through the API, at version 1 with its
    `referral.created` event, for the status changes: each copy's personal data is encrypted
    again under its own id (the hub binds each envelope to its referral), so the receiver's
    answer decrypts them as for any referral. Seconds, where sending them would take minutes."""
    contexts = {data_attribute(c): c for c in PERSONAL_CATEGORIES}
    contexts |= dict(referral_service.EXTRA_TEXTS.values())
    with engine.connect() as connection:
        template = dict(
            connection.execute(select(Referral.__table__).where(Referral.id == template_id))
            .mappings()
            .one()
        )
        created = dict(
            connection.execute(
                select(ReferralEvent.__table__).where(ReferralEvent.referral_id == template_id)
            )
            .mappings()
            .one()
        )
    created.pop("id")
    ids, referrals, events = [], [], []
    with app.app_context():
        plain = {
            column: crypto.decrypt(template[column], f"{template_id}:{context}")
            for column, context in contexts.items()
            if template[column] is not None
        }
        for number in range(count):
            referral_id = str(uuid.uuid4())
            sealed = {
                column: crypto.encrypt(value, f"{referral_id}:{contexts[column]}")
                for column, value in plain.items()
            }
            reference = f"{prefix}-00-{number:06d}"
            copy = {"id": referral_id, "idempotency_key": None, "reference": reference}
            referrals.append(template | sealed | copy)
            events.append(created | {"referral_id": referral_id})
            ids.append(referral_id)
    with engine.begin() as connection:
        for start in range(0, count, directory_search.CHUNK):
            connection.execute(
                Referral.__table__.insert(), referrals[start : start + directory_search.CHUNK]
            )
            connection.execute(
                ReferralEvent.__table__.insert(), events[start : start + directory_search.CHUNK]
            )
    return ids


def search_paths(directory, rng):
    """Category + province searches that find something, as a caseworker's would."""
    paths = set()
    for _ in range(SEARCHES * 20):
        params = directory_search.category_province(rng, directory)
        if directory.expected(params):
            paths.add("/api/v1/services?" + urlencode(params))
        if len(paths) == SEARCHES:
            break
    return sorted(paths)


# --- servers and load ---------------------------------------------------------------------


@dataclass
class Stack:
    """Where a load goes; cpu(): the CPU seconds its processes and database backends used so
    far, {"web": gunicorn's workers, "worker": the worker process, "database": backends};
    whether a worker runs there (seals the audit log)."""

    url: str
    description: str
    cpu: Callable[[], dict]
    worker: bool


def bare_stack(server):
    def cpu():
        web, database = server.cpu()
        return {"web": web, "worker": 0.0, "database": database}

    return Stack(server.url, server.description, cpu, worker=False)


def wait_for_line(log, line, process, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        if line in log.read_text():
            return
        time.sleep(0.2)
    raise SystemExit(f"The worker did not start: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def serve_hub(app, port, workers, folder):
    """`gunicorn referral_hub.wsgi:app` (sync workers) and one `referral-hub worker`, both from
    this checkout, on the bench's settings; stopped at the end."""
    engine = directory_search.engine_of(app)
    settings = directory_search.hub_settings(app.config["SQLALCHEMY_DATABASE_URI"], port)
    env = {key: str(value) for key, value in settings.items()}
    env |= {"DATABASE_URL": env["SQLALCHEMY_DATABASE_URI"], "PYTHONPATH": str(ROOT)}
    log = folder / "worker.log"
    with (
        harness.gunicorn(
            "referral_hub.wsgi:app", env, engine, workers, 1, "/readyz", port=port
        ) as server,
        open(log, "w") as output,
    ):
        worker = subprocess.Popen(
            [sys.executable, "-m", "referral_hub", "worker"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_line(log, "scheduler running", worker)

            def cpu():
                web, database = server.cpu()
                return {"web": web, "worker": harness.process_cpu(worker.pid), "database": database}

            described = f"{server.description}, and one `referral-hub worker`"
            yield Stack(server.url, described, cpu, worker=True)
        finally:
            worker.terminate()
            worker.wait(timeout=30)


@dataclass
class Outcome:
    """One endpoint's load: wrk's figures, the CPU its requests cost and what they wrote."""

    endpoint: Endpoint
    wrk: dict
    cpu: dict  # seconds: web, worker, database
    written: tuple  # referrals, events, audit entries, -, bare inserts
    started: datetime
    ended: datetime

    @property
    def completed(self):
        return self.wrk["requests"]

    @property
    def throughput(self):
        return self.completed / (self.wrk["duration_us"] / 1e6)

    @property
    def p50_ms(self):
        return self.wrk["p50_us"] / 1000

    @property
    def p99_ms(self):
        return self.wrk["p99_us"] / 1000

    def cpu_ms(self, part=None):
        seconds = self.cpu[part] if part else sum(self.cpu.values())
        return seconds / self.completed * 1000 if self.completed else math.nan

    @property
    def failed(self):
        """non-2xx answers and socket errors, by kind."""
        wrong = {
            f"HTTP {status}": count
            for status, count in self.wrk["statuses"].items()
            if not 200 <= int(status) < 300
        }
        sockets = {kind: self.wrk[kind] for kind in ("connect", "read", "write", "timeout")}
        return wrong | {f"socket {k}": n for k, n in sockets.items() if n}


class Bench:
    """The run's settings, database and files; loads an endpoint and keeps its outcome."""

    def __init__(self, args, app, database_url, folder):
        self.args, self.app, self.database_url, self.folder = args, app, database_url, folder
        self.engine = directory_search.engine_of(app)
        self.schema = Schema.of(self.engine)
        self.outcomes = []

    def file(self, name, content):
        path = self.folder / name
        path.write_text(content)
        return str(path)

    def load(self, stack, endpoint, paths, headers=(), each=False, **options):
        """wrk on one endpoint, with these request paths; once the writes have settled, the
        CPU its requests cost and what they wrote."""
        args = self.args
        options |= {"threads": args.threads, "each": int(each)}
        options["paths"] = self.file(
            f"load-{len(self.outcomes)}.paths", "".join(f"{p}\n" for p in paths)
        )
        command = [
            *("wrk", "-t", str(args.threads), "-c", str(args.connections)),
            *("-d", f"{args.duration}s", "--latency", "--timeout", WRK_TIMEOUT, "-s", str(LUA)),
            *(part for header in headers for part in ("-H", header)),
            stack.url + "/",
            "--",
            *(f"{key}={value}" for key, value in options.items()),
        ]
        print(f"loading {endpoint.name} ...", flush=True)
        before, cpu_before = counts(self.engine, self.schema), stack.cpu()
        started = datetime.now(UTC)
        finished = subprocess.run(command, capture_output=True, text=True, check=False)
        figures = [
            line.removeprefix("wrk-json ")
            for line in finished.stdout.splitlines()
            if line.startswith("wrk-json ")
        ]
        if finished.returncode or not figures:
            raise SystemExit(f"wrk failed: {finished.stdout}\n{finished.stderr}")
        after = settle(self.engine, self.schema, stack.worker)
        cpu_after = stack.cpu()
        outcome = Outcome(
            endpoint,
            json.loads(figures[0]),
            {part: cpu_after[part] - cpu_before[part] for part in cpu_before},
            tuple(a - b for a, b in zip(after, before, strict=True)),
            started,
            datetime.now(UTC),
        )
        self.outcomes.append(outcome)
        if endpoint.writes != (0, 0, 0):
            directory_search.vacuum_analyze(self.engine)  # as autovacuum would, between loads
        return outcome


def warm_up(http, url, count=WARMUP, method="GET", **kwargs):
    """A few requests before the loads, untimed: each gunicorn worker's first requests load
    keys and fill caches."""
    for _ in range(count):
        response = http.request(method, url, timeout=30, **kwargs)
        if not response.ok:
            raise SystemExit(f"warm-up: {method} {response.url} -> {response.status_code}")
    return response


def measure_bare(bench):
    """The bare GET and POST under the same gunicorn settings and load."""
    with harness.bare_app(bench.database_url, bench.args.workers, 1) as server:
        stack = bare_stack(server)
        with requests.Session() as http:
            warm_up(http, server.url + "/hello")
            warm_up(
                http,
                server.url + "/insert",
                method="POST",
                data=harness.baseline_body(),
                headers={"Content-Type": "application/json"},
            )
        bench.load(stack, BARE_GET, ["/hello"])
        post_lua = harness.baseline_dir() / "post.lua"
        return bench.load(stack, BARE_POST, ["/insert"], base=post_lua), server.description


LEFT_OUT = ("FROM token_revocations", "FROM subscriptions")


def _captured(app, request):
    """The statements request(client) sends, as text with their parameters, and its answer.
    The token's check of the revocations and the search for subscriptions are left out: the
    hub's servers keep both in the process (the revocations for a few seconds, the
    subscriptions until they change)."""
    sent = []

    def record(_connection, _cursor, _statement, parameters, context, _executemany):
        sent.append((context.statement, parameters))  # as written, not as prepared.py's EXECUTE

    engine = directory_search.engine_of(app)
    client = app.test_client()
    event.listen(engine, "before_cursor_execute", record)
    try:
        answer = request(client).get_json()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return [(sql, values) for sql, values in sent if not any(t in sql for t in LEFT_OUT)], answer


def _bearer(app, client_credentials, scopes):
    answer = app.test_client().post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": scopes},
        auth=client_credentials,
    )
    return {"Authorization": f"Bearer {answer.get_json()['access_token']}"}


def capture_create(app, parties, body):
    """What bench/bare_replay.py replays for POST /create: the statements of one create sent
    in this process, and that create's id, reference and Idempotency-Key."""
    headers = _bearer(app, parties.sender, SENDER_SCOPES)
    post = {"data": body, "content_type": "application/json"}
    app.test_client().post(
        "/api/v1/referrals", headers=headers | {"Idempotency-Key": "warm"}, **post
    )
    key = {"Idempotency-Key": "captured"}
    statements, created = _captured(
        app, lambda client: client.post("/api/v1/referrals", headers=headers | key, **post)
    )
    return {"statements": statements, "key": "captured"} | {
        name: created[name] for name in ("id", "reference")
    }


def capture_list(app, parties):
    """What bench/bare_replay.py replays for GET /list: the statements of the sender's list
    of 50, sent in this process."""
    headers = _bearer(app, parties.sender, SENDER_SCOPES)
    statements, _answer = _captured(
        app, lambda client: client.get("/api/v1/referrals?limit=50", headers=headers)
    )
    return {"statements": statements}


def capture_status(app, parties, referral_id):
    """What bench/bare_replay.py replays for POST /status/<id>: the statements of the
    receiver's sent -> received on this referral, sent in this process."""
    headers = _bearer(app, parties.receiver, RECEIVER_SCOPES) | {"If-Match": '"1"'}
    statements, _answer = _captured(
        app,
        lambda client: client.post(
            f"/api/v1/referrals/{referral_id}/status", json={"status": "received"}, headers=headers
        ),
    )
    return {"statements": statements, "id": referral_id}


def measure_bare_replay(bench, captured, body_file, referrals):
    """bench/bare_replay.py under the same gunicorn settings and load as the bare baseline:
    its create, its status change on each of `referrals` (copies at version 1) at most once,
    and its list. `captured`: what capture_create, capture_status and capture_list gave."""
    files = {f"BARE_{name.upper()}_STATEMENTS": bench.folder / name for name in captured}
    for path, statements in zip(files.values(), captured.values(), strict=True):
        path.write_bytes(pickle.dumps(statements))
    env = {name: str(path) for name, path in files.items()}
    env["BASELINE_DSN"] = harness.dsn(bench.database_url)
    with harness.gunicorn(
        "bare_replay:app", env, bench.engine, bench.args.workers, 1, "/hello", Path(__file__).parent
    ) as server:
        with requests.Session() as http:
            warm_up(http, server.url + "/create", method="POST", json={})
            for referral_id in referrals[:WARMUP]:
                warm_up(http, f"{server.url}/status/{referral_id}", 1, "POST", json={})
            warm_up(http, server.url + "/list")
        stack, headers = bare_stack(server), ("Content-Type: application/json",)
        bench.load(stack, BARE_CREATE, ["/create"], headers, body=body_file)
        status_body = bench.file("status.json", '{"status": "received"}')
        paths = [f"/status/{referral_id}" for referral_id in referrals[WARMUP:]]
        bench.load(stack, BARE_STATUS, paths, headers, each=True, body=status_body)
        bench.load(stack, BARE_LIST, ["/list"])


@dataclass
class HubRequests:
    """What the hub's loads send: the two parties' Authorization headers, the referral body,
    the run's Idempotency-Key prefix, the referrals for the status changes (the first WARMUP
    for the warm-up) and the searches and services to read."""

    sender: str
    receiver: str
    body: str
    keys: str
    copies: list
    searches: list
    services: list


def prepare_hub(bench, stack, parties, body, directory, copies_wanted):
    """Real tokens, one referral sent through the API and copied for the status changes, and
    a warm-up of every endpoint."""
    tokens = [
        token(stack.url, parties.sender, SENDER_SCOPES),
        token(stack.url, parties.receiver, RECEIVER_SCOPES),
    ]
    sender, receiver = (f"Bearer {value}" for value in tokens)
    keys = f"bench-{secrets.token_hex(4)}"
    with requests.Session() as http:
        http.headers["Authorization"] = sender
        post = {"method": "POST", "data": body, "headers": {"Content-Type": "application/json"}}
        template = warm_up(http, stack.url + "/api/v1/referrals", 1, **post).json()["id"]
        print(f"copying a referral {copies_wanted:,} times for the status changes ...", flush=True)
        copying = time.perf_counter()
        copies = copy_referral(bench.app, bench.engine, template, copies_wanted + WARMUP)
        directory_search.vacuum_analyze(bench.engine)
        print(f"  in {time.perf_counter() - copying:.1f} s", flush=True)
        for n in range(WARMUP):
            new_key = {"Content-Type": "application/json", "Idempotency-Key": f"{keys}-w{n}"}
            warm_up(http, stack.url + "/api/v1/referrals", 1, "POST", data=body, headers=new_key)
            warm_up(
                http,
                f"{stack.url}/api/v1/referrals/{copies[n]}/status",
                1,
                "POST",
                json={"status": "received"},
                headers={"Authorization": receiver, "If-Match": '"1"'},
            )
        services = list(directory.services)[:SERVICE_READS]
        searches = search_paths(directory, random.Random(bench.args.seed))
        for path in (f"/api/v1/referrals/{template}", "/api/v1/referrals?limit=50", searches[0]):
            warm_up(http, stack.url + path)
        warm_up(http, f"{stack.url}/api/v1/services/{services[0]}")
    return HubRequests(
        f"Authorization: {sender}",
        f"Authorization: {receiver}",
        body,
        keys,
        copies,
        searches,
        services,
    )


def measure_hub(bench, stack, sent):
    """Each endpoint's load; returns the create load's seal delays, and the audit chain's
    check after the create load and after every load."""
    json_type = "Content-Type: application/json"
    sabotage = {"reuse": REUSED_KEYS} if bench.args.sabotage == "reuse-keys" else {}
    created = bench.load(
        stack, CREATE, ["/api/v1/referrals"], (sent.sender, json_type),
        body=bench.file("create.json", sent.body), keys=sent.keys, **sabotage,
    )  # fmt: skip
    seal = seal_delays(bench.engine, bench.schema, created.started, created.ended)
    verified = verify_audit(bench.app)

    bench.load(
        stack,
        STATUS,
        [f"/api/v1/referrals/{i}/status" for i in sent.copies[WARMUP:]],
        (sent.receiver, json_type, 'If-Match: "1"'),
        each=True,
        body=bench.file("status.json", '{"status": "received"}'),
    )
    with bench.engine.connect() as connection:
        created_ids = connection.execute(
            text("SELECT id FROM referrals WHERE idempotency_key LIKE :keys LIMIT :count"),
            {"keys": f"{sent.keys}-%", "count": READS},
        ).scalars()
        reads = [f"/api/v1/referrals/{i}" for i in created_ids]
    bench.load(stack, READ, reads, (sent.sender,))
    bench.load(stack, LIST, ["/api/v1/referrals?limit=50"], (sent.sender,))
    bench.load(stack, SEARCH, sent.searches, (sent.sender,))
    bench.load(stack, SERVICE, [f"/api/v1/services/{i}" for i in sent.services], (sent.sender,))
    return seal, verified, verify_audit(bench.app)


# --- the report ---------------------------------------------------------------------------


def print_table(outcomes):
    by_name = {o.endpoint.name: o for o in outcomes}
    header = (
        f"{'endpoint':<20}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/req':>11}"
        f"{'web':>7}{'worker':>7}{'db':>7}   {'hub/bare req/s':>15}{'CPU':>8}"
    )
    print(header)
    print("-" * len(header))
    for o in outcomes:
        line = (
            f"{o.endpoint.name:<20}{o.throughput:>8.0f}{o.p50_ms:>9.1f}{o.p99_ms:>9.1f}"
            f"{o.cpu_ms():>11.2f}{o.cpu_ms('web'):>7.2f}{o.cpu_ms('worker'):>7.2f}"
            f"{o.cpu_ms('database'):>7.2f}"
        )
        bare = by_name.get(o.endpoint.bare)
        if bare:
            kind = "INSERT" if bare.endpoint is BARE_POST else "GET"
            line += (
                f"   {directory_search.ratio(o.throughput, bare.throughput):>8.2f} {kind:<6}"
                f"{directory_search.ratio(o.cpu_ms(), bare.cpu_ms()):>7.1f}x"
            )
        print(line)
    print(
        "\nCPU: the server's processes and database backends per completed request (web: gunicorn's"
        "\nworkers; worker: `referral-hub worker`; db: PostgreSQL backends). hub/bare: the hub's"
        "\nthroughput as a share of the matching bare endpoint's (writes: POST /insert; reads: GET"
        "\n/hello), and its CPU per request as a multiple of that endpoint's."
    )


def check_requests(outcomes):
    """Every answer 2xx, no socket error; an "each" load never ran out of its referrals."""
    passed = True
    for o in outcomes:
        failed = o.failed
        if o.wrk["ran_out"]:
            failed["ran out of referrals"] = o.wrk["ran_out"]
        if failed:
            passed = False
            listed = ", ".join(f"{kind}: {count}" for kind, count in failed.items())
            print(f"FAIL  {o.endpoint.name}: {o.completed} completed; {listed}")
    total = sum(o.completed for o in outcomes)
    if passed:
        print(f"PASS  requests: all {total:,} answers 2xx, no socket error, on every endpoint")
    return passed


def check_writes(outcomes, connections):
    """What each load wrote against what its completed requests make: at least that, at most
    `connections` requests more (those queued when wrk stopped still run)."""
    passed = True
    names = ("referrals", "events", "audit entries")
    for o in outcomes:
        if o.endpoint is BARE_GET:
            continue
        if o.endpoint is BARE_POST:
            expected, written = {"rows": 1}, {"rows": o.written[4]}
        else:
            expected = dict(zip(names, o.endpoint.writes, strict=True))
            written = dict(zip(names, o.written[:3], strict=True))
        wrong = [
            f"{name} {written[name]:+,} (expected {per * o.completed:,} to "
            f"{per * (o.completed + connections):,})"
            for name, per in expected.items()
            if not per * o.completed <= written[name] <= per * (o.completed + connections)
        ]
        shown = ", ".join(f"{name} {count:+,}" for name, count in written.items())
        verdict = "FAIL" if wrong else "PASS"
        passed &= not wrong
        print(
            f"{verdict}  writes of {o.endpoint.name}: {o.completed:,} completed; {shown}"
            + (f"; wrong: {'; '.join(wrong)}" if wrong else "")
        )
    return passed


def report_audit(seal, verified, verified_at_end):
    """The seal delay and the chain's checks; True when both passed."""
    if seal is None:
        print("n/a   audit seal delay: this schema has no audit_pending / audit_entries.sealed_at")
    else:
        p50, p95, longest, sealed, unsealed = seal
        print(
            f"info  audit seal delay of the {sealed:,} entries written during the create load: "
            f"p50 {p50:.3f} s, p95 {p95:.3f} s, max {longest:.3f} s"
            + (f"; {unsealed:,} without sealed_at" if unsealed else "")
        )
    for moment, result in (("the create load", verified), ("every load", verified_at_end)):
        verdict = "PASS" if result["ok"] else "FAIL"
        print(f"{verdict}  audit verify after {moment}: {json.dumps(result)}")
    return verified["ok"] and verified_at_end["ok"]


def report_targets(outcomes, seal, verified):
    by_name = {o.endpoint.name: o for o in outcomes}
    for o in outcomes:
        if o.endpoint.bare is None:
            continue
        bare = by_name[o.endpoint.bare]
        got = directory_search.ratio(o.throughput, bare.throughput)
        if o.endpoint.target is None:
            print(f"info  {o.endpoint.name}: {got:.0%} of {bare.endpoint.name} (no target)")
            continue
        verdict = "PASS" if got >= o.endpoint.target else "FAIL"
        print(
            f"{verdict}  {o.endpoint.name}: {got:.0%} of {bare.endpoint.name}'s throughput "
            f"(target >= {o.endpoint.target:.0%})"
        )
    for hub, bare, baseline in (
        (CREATE, BARE_CREATE, BARE_POST),
        (STATUS, BARE_STATUS, BARE_POST),
        (LIST, BARE_LIST, BARE_GET),
    ):
        hub, bare, baseline = (by_name.get(e.name) for e in (hub, bare, baseline))
        if hub and bare and baseline:
            print(
                f"info  {bare.endpoint.name} (the hub's statements, without the hub): "
                f"{directory_search.ratio(bare.throughput, baseline.throughput):.0%} of "
                f"{baseline.endpoint.name}'s throughput; {hub.endpoint.name}: "
                f"{directory_search.ratio(hub.throughput, bare.throughput):.0%} of it"
            )
    if seal is None:
        print(f"n/a   audit seal delay p95 <= {SEAL_TARGET_P95_S:.0f} s (no sequencer here)")
    else:
        verdict = "PASS" if seal[1] <= SEAL_TARGET_P95_S and verified["ok"] else "FAIL"
        print(
            f"{verdict}  audit seal delay p95 {seal[1]:.3f} s (target <= "
            f"{SEAL_TARGET_P95_S:.0f} s) and verify {'ok' if verified['ok'] else 'not ok'}"
        )


def report(bench, described, seal, verified, verified_at_end):
    args, outcomes = bench.args, bench.outcomes
    print(
        f"\nwrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency --timeout "
        f"{WRK_TIMEOUT} -s bench/write_path.lua, one endpoint after the other"
    )
    for line in described:
        print(line)
    print()
    print_table(outcomes)
    print("\nChecks:")
    passed = check_requests(outcomes)
    passed &= check_writes(outcomes, args.connections)
    passed &= report_audit(seal, verified, verified_at_end)
    print("\nTargets (figures, not the exit status):")
    report_targets(outcomes, seal, verified)
    return passed


# --- main ---------------------------------------------------------------------------------


def load_average():
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def run(args, database_url):
    started = time.perf_counter()
    load_at_start = load_average()
    port = harness.free_port()
    app = create_app(directory_search.hub_settings(database_url, port))
    engine = directory_search.engine_of(app)
    print(f"database: {engine.url.render_as_string(hide_password=True)}")
    print(f"machine: {harness.describe_machine(engine)}")
    harness.migrate(app)
    rows = directory_search.generate(
        random.Random(args.seed), args.services // 5 or 1, args.services
    )
    directory_search.build(engine, rows)
    directory = directory_search.index(engine, rows)
    with tempfile.TemporaryDirectory(prefix="hub_bench_write_") as folder:
        bench = Bench(args, app, database_url, Path(folder))
        parties = make_parties(app)  # its audit entries sealed by the worker, as any
        body = json.dumps(referral_body(parties.service_id))
        create = capture_create(app, parties, body)
        insert, bare_description = measure_bare(bench)
        rate = max(MIN_COPIES_PER_S, insert.throughput * COPIES_MARGIN)
        copies = math.ceil(rate * args.duration)
        bare_copies = copy_referral(app, engine, create["id"], copies + WARMUP + 1, "BS")
        captured = {
            "create": create,
            "status": capture_status(app, parties, bare_copies.pop()),
            "list": capture_list(app, parties),
        }
        measure_bare_replay(bench, captured, bench.file("create.json", body), bare_copies)
        with serve_hub(app, port, args.workers, Path(folder)) as stack:
            sent = prepare_hub(bench, stack, parties, body, directory, copies)
            seal, verified, verified_at_end = measure_hub(bench, stack, sent)
            described = [
                f"bare: {bare_description}",
                f"hub: {stack.description}",
                f"directory: {len(directory.services)} searchable services of {args.services};"
                f" {copies:,} referrals copied for the status changes",
                f"audit schema: audit_pending {'yes' if bench.schema.pending else 'no'}, "
                f"audit_entries.sealed_at {'yes' if bench.schema.sealed_at else 'no'}",
            ]
    passed = report(bench, described, seal, verified, verified_at_end)
    print(f"\nload average at the start {load_at_start}; at the end {load_average()}")
    print(f"whole run {time.perf_counter() - started:.0f} s")
    engine.dispose()
    return passed


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per endpoint")
    parser.add_argument("--connections", type=int, default=32, help="wrk's -c")
    parser.add_argument("--threads", type=int, default=2, help="wrk's -t")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers, both apps")
    parser.add_argument("--services", type=int, default=400, help="services in the directory")
    parser.add_argument("--seed", type=int, default=20261206)
    parser.add_argument("--database-url", help="an existing, empty PostgreSQL database")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway database")
    parser.add_argument(
        "--sabotage",
        nargs="?",
        const="reuse-keys",
        choices=["reuse-keys"],
        help="reuse Idempotency-Keys during the create load, to see the count check fail",
    )
    args = parser.parse_args(argv)
    if args.connections < args.threads or min(args.duration, args.threads, args.workers) < 1:
        parser.error("give at least one second, thread and worker, and a connection per thread")
    if args.services < 10:
        parser.error("give at least 10 services")
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (Debian: apt-get install wrk)")
    return args


if __name__ == "__main__":
    sys.exit(harness.main(parse_args, run))
