"""Directory search benchmark: GET /api/v1/services on a synthetic national directory.

Builds 5,000 organisations and 50,000 services spread over every province on a throwaway
PostgreSQL database, serves the hub over real HTTP on 127.0.0.1 and times typical searches
through the whole stack (socket, WSGI, token check, search, serialisation). For the same
parameters it also times the service layer (`search.search_services`) and the bare SQL the
search sends, so the report shows where the time goes. Target: p95 under 25 ms for the
filtered searches (category + district + age, category + province).

    python bench/directory_search.py [--database-url URL] [--requests 1000]
        [--organizations 5000] [--services 50000] [--keep] [--reuse] [--seed N]
        [--server auto|werkzeug|gunicorn]

Without --database-url it creates `hub_bench_<random>` on postgresql://postgres@127.0.0.1:5432
and drops it at the end (unless --keep). With --database-url the database must be empty, or
hold a directory kept earlier and be measured again with --reuse (migrations are applied
first, so a new index is measured without rebuilding). The exit status is 1 when the target
is missed.
"""

import argparse
import contextlib
import gc
import importlib.util
import logging
import math
import multiprocessing
import os
import random
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import requests
from flask_migrate import upgrade
from sqlalchemy import create_engine, event, insert, text
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from referral_hub import create_app
from referral_hub.auth import service as auth_service
from referral_hub.directory import reference, search
from referral_hub.directory import service as directory_service
from referral_hub.directory.models import (
    Contact,
    Location,
    Organization,
    Phone,
    Schedule,
    Service,
    ServiceArea,
    ServiceAtLocation,
    ServiceCategory,
    ServiceLanguage,
)
from referral_hub.directory.schemas import SearchArgs
from referral_hub.extensions import db

SERVER_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432"
TARGET_P95_MS = 25.0
FILTERED_KINDS = ("category+district+age", "category+province")
WARMUP_REQUESTS = 100
LAYER_SAMPLES = 300  # parameter sets also timed in-process and as bare SQL (medians need few)
CHUNK = 5000
SECRET_KEY = "bench-secret-key-" + "x" * 48

# Words of the synthetic names and descriptions; `q` queries draw from them too. Descriptions
# pick them with Zipf-like weights, so some words are common and others rare, as in real text.
WORD_TEXT = (
    "family support counselling child protection community care shelter safe legal aid youth "
    "health education school vocational training outreach rehabilitation recovery women "
    "violence prevention trafficking reintegration foster kinship parenting nutrition clinic "
    "mental therapy literacy disability inclusion mobile early learning hotline mediation "
    "emergency housing livelihood savings mentoring sports arts music library scholarship "
    "transport interpretation psychosocial trauma grief adolescent infant maternal hygiene "
    "sanitation water agriculture apprenticeship tailoring mechanics computer english khmer "
    "village commune district province riverside border migrant street workshop"
)
WORDS = WORD_TEXT.split()
ORG_KINDS = ("Organisation", "Association", "Foundation", "Centre", "Network", "Alliance", "Trust")
SERVICE_KINDS = ("Programme", "Project", "Clinic", "Centre", "Outreach", "Service", "Hotline")
AGE_PROFILES = (  # (minimum_age, maximum_age), (None, None) is everyone
    (None, None),
    (None, None),
    (0, 17),
    (5, 17),
    (12, 24),
    (0, 5),
    (6, 14),
    (15, 24),
    (18, None),
    (10, 18),
)
SCHEDULES = (
    ("MO,TU,WE,TH,FR", "08:00", "17:00"),
    ("SA", "08:00", "12:00"),
    ("SU", "09:00", "12:00"),
)
CAMBODIA = {"lat": (10.6, 14.4), "lon": (102.6, 107.5)}


@dataclass
class Directory:
    """What the queries draw their parameters from, read back from the database so that every
    query finds hits, and so that a kept database can be measured again (--reuse)."""

    links: list  # (category codes, area codes) of every searchable service
    points: list  # (latitude, longitude) of the services that have coordinates


# --- database -----------------------------------------------------------------------------


def create_database(server_url):
    """A fresh database per run: the figures never depend on leftovers of an earlier run."""
    name = f"hub_bench_{secrets.token_hex(4)}"
    admin = create_engine(f"{server_url}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{server_url}/{name}", name


def drop_database(server_url, name):
    admin = create_engine(f"{server_url}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def check_local(database_url):
    """The benchmark talks only to this machine."""
    host = make_url(database_url).host
    if host not in ("127.0.0.1", "localhost", None):
        raise SystemExit(f"Refusing to benchmark against {host}: use a database on 127.0.0.1.")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def hub_settings(database_url, port):
    """Testing settings as in tests/conftest.py, but with production-like caching: the
    deny list is re-read every 5 s as in production, not on every request."""
    return {
        "HUB_ENV": "testing",
        "SECRET_KEY": SECRET_KEY,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "HUB_ISSUER": f"http://127.0.0.1:{port}",
        "HUB_AUDIENCE": f"http://127.0.0.1:{port}/api",
        "PASSWORD_HASH_TIME_COST": 1,
        "PASSWORD_HASH_MEMORY_KIB": 1024,
        "ACCESS_TOKEN_LIFETIME": 3600,
        "REVOCATION_CACHE_SECONDS": 5,
    }


def make_hub(database_url, port):
    os.environ.setdefault("HUB_INSTANCE_PATH", tempfile.mkdtemp(prefix="hub_bench_"))
    app = create_app(hub_settings(database_url, port))
    # One JSON log line per request would be written in the timed path; keep warnings only.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    return app


# --- synthetic directory ------------------------------------------------------------------


def _zipf_weights(count, exponent=1.0):
    return [1 / (rank + 1) ** exponent for rank in range(count)]


def _unique(name, taken):
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name} {number}", number + 1
    taken.add(candidate)
    return candidate


def _phone(rng):
    return f"+855 {rng.randint(10, 99)} {rng.randint(100, 999)} {rng.randint(100, 999)}"


def _province_centres(rng):
    """A made-up centre per province inside Cambodia's bounding box (areas.json has no
    coordinates); locations scatter around it, so `near` finds dense and sparse places."""
    return {
        p["code"]: (rng.uniform(*CAMBODIA["lat"]), rng.uniform(*CAMBODIA["lon"]))
        for p in reference.provinces()
    }


def generate(rng, organizations, services):
    """Rows for every directory table, shaped as the service layer would write them."""
    provinces = reference.provinces()
    districts = {p["code"]: [d["code"] for d in p["districts"]] for p in provinces}
    areas = reference.areas_by_code()
    codes = sorted(reference.terms_by_code())
    weights = _zipf_weights(len(WORDS))
    centres = _province_centres(rng)
    now = datetime.now(UTC)
    tables = ("org", "loc", "svc", "cat", "area", "lang", "phone", "contact", "schedule", "sal")
    rows = {table: [] for table in tables}

    def words(low, high):
        return " ".join(rng.choices(WORDS, weights, k=rng.randint(low, high)))

    taken = set()
    orgs = []
    for _ in range(organizations):
        province = rng.choice(provinces)["code"]
        title = f"{rng.choice(WORDS).title()} {rng.choice(WORDS).title()} {rng.choice(ORG_KINDS)}"
        org = {
            "id": str(uuid.uuid4()),
            "name": _unique(title, taken),
            "alternate_name": None,
            "description": words(10, 30).capitalize() + ".",
            "email": None,
            "website": None,
            "province": province,
            "status": rng.choices(("active", "suspended", "retired"), (97, 2, 1))[0],
            "sources": [],
            "last_verified_at": now - timedelta(days=rng.randint(0, 400)),
            "last_verified_by": "bench",
            "created_at": now,
            "updated_at": now,
        }
        rows["org"].append(org)
        location = None
        if rng.random() < 0.6:  # 60 % of organisations have a located office
            lat, lon = centres[province]
            location = {
                "id": str(uuid.uuid4()),
                "organization_id": org["id"],
                "name": f"{org['name']} office",
                "description": None,
                "address": f"Street {rng.randint(1, 600)}",
                "province": province,
                "district": rng.choice(districts[province]),
                "latitude": lat + rng.gauss(0, 0.15),
                "longitude": lon + rng.gauss(0, 0.15),
                "confidential": rng.random() < 0.05,
            }
            rows["loc"].append(location)
        orgs.append((org, location, set()))

    for _ in range(services):
        org, location, names = rng.choice(orgs)
        province = org["province"] if rng.random() < 0.9 else rng.choice(provinces)["code"]
        if rng.random() < 0.35:
            area_codes = [province]
        else:
            pool = districts[province]
            area_codes = sorted(rng.sample(pool, min(len(pool), rng.randint(1, 3))))
        category_codes = sorted(rng.sample(codes, rng.randint(1, 3)))
        minimum_age, maximum_age = rng.choice(AGE_PROFILES)
        name = f"{rng.choice(WORDS).title()} {rng.choice(WORDS).title()} "
        name = _unique(name + rng.choice(SERVICE_KINDS), names)
        description = words(15, 40).capitalize() + "."
        eligibility = words(3, 8) if rng.random() < 0.3 else None
        service_id = str(uuid.uuid4())
        located = location is not None and rng.random() < 0.5
        public = located and not location["confidential"]
        area_names = " ".join(f"{areas[c]['name_en']} {areas[c]['name_km']}" for c in area_codes)
        search_text = " ".join(  # the same parts, in the same order, as refresh_search_text
            [
                name,
                "",
                description,
                eligibility or "",
                org["name"],
                reference.category_names(category_codes),
                area_names,
            ]
        ).lower()
        status = rng.choices(("active", "inactive", "defunct", "temporarily closed"), (92, 4, 2, 2))
        rows["svc"].append(
            {
                "id": service_id,
                "organization_id": org["id"],
                "name": name,
                "alternate_name": None,
                "description": description,
                "url": None,
                "email": None,
                "status": status[0],
                "application_process": "Call or send a referral through the hub.",
                "fees_description": "Free of charge." if rng.random() < 0.8 else None,
                "eligibility_description": eligibility,
                "minimum_age": minimum_age,
                "maximum_age": maximum_age,
                "eligibility_sex": rng.choices(("female", "male", None), (15, 5, 80))[0],
                "accepting_referrals": rng.random() < 0.85,
                "capacity_status": rng.choices(
                    ("available", "waitlist", "full", "assessment_required"), (60, 20, 10, 10)
                )[0],
                "places_free": rng.randint(0, 30) if rng.random() < 0.5 else None,
                "capacity_updated_at": now - timedelta(days=rng.randint(0, 60)),
                "capacity_updated_by": "bench",
                "latitude": location["latitude"] if public else None,
                "longitude": location["longitude"] if public else None,
                "search_text": search_text,
                "sources": [],
                "last_verified_at": now - timedelta(days=rng.randint(0, 400)),
                "last_verified_by": "bench",
                "created_at": now,
                "updated_at": now,
            }
        )
        rows["cat"] += [{"service_id": service_id, "code": c} for c in category_codes]
        rows["area"] += [{"service_id": service_id, "area_code": c} for c in area_codes]
        languages = ["km"] + (["en"] if rng.random() < 0.4 else [])
        rows["lang"] += [{"service_id": service_id, "code": c} for c in languages]
        if rng.random() < 0.7:
            rows["phone"].append(
                {
                    "id": str(uuid.uuid4()),
                    "organization_id": None,
                    "service_id": service_id,
                    "number": _phone(rng),
                    "type": "voice",
                    "description": None,
                }
            )
        if rng.random() < 0.5:
            rows["contact"].append(
                {
                    "id": str(uuid.uuid4()),
                    "service_id": service_id,
                    "name": f"{rng.choice(WORDS).title()} desk",
                    "title": "Intake officer",
                    "email": None,
                    "phone": _phone(rng),
                }
            )
        for byday in rng.sample(SCHEDULES, rng.randint(0, 2)):
            rows["schedule"].append(
                {
                    "id": str(uuid.uuid4()),
                    "service_id": service_id,
                    "freq": "WEEKLY",
                    "byday": byday[0],
                    "opens_at": byday[1],
                    "closes_at": byday[2],
                    "description": None,
                }
            )
        if located:
            rows["sal"].append({"service_id": service_id, "location_id": location["id"]})
    return rows


def load(engine, rows):
    """Bulk insert with Core executemany in chunks (psycopg2 batches them into multi-row
    INSERTs): minutes faster than one ORM object per row, and the ORM adds nothing here."""
    tables = (
        ("org", Organization),
        ("loc", Location),
        ("svc", Service),
        ("cat", ServiceCategory),
        ("area", ServiceArea),
        ("lang", ServiceLanguage),
        ("phone", Phone),
        ("contact", Contact),
        ("schedule", Schedule),
        ("sal", ServiceAtLocation),
    )
    counts = {}
    with engine.begin() as connection:
        for key, model in tables:
            statement = insert(model.__table__)
            batch = rows[key]
            for start in range(0, len(batch), CHUNK):
                connection.execute(statement, batch[start : start + CHUNK])
            counts[model.__tablename__] = len(batch)
    return counts


def vacuum_analyze(engine):
    """Fresh statistics for the planner, and a visibility map so index-only scans need not
    visit the heap, as autovacuum would have done on a live hub."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM (ANALYZE)"))


def build(app, organizations, services, seed):
    rng = random.Random(seed)
    with app.app_context():
        started = time.perf_counter()
        rows = generate(rng, organizations, services)
        generated = time.perf_counter()
        counts = load(db.engine, rows)
        loaded = time.perf_counter()
        vacuum_analyze(db.engine)
        print(
            f"  generated in {generated - started:.1f} s, inserted in {loaded - generated:.1f} s, "
            f"VACUUM ANALYZE in {time.perf_counter() - loaded:.1f} s; rows: {counts}"
        )


def read_directory(app):
    """Categories and areas of the services a search can return (active, of an active
    organisation), and the coordinates there are."""
    links_sql = text(
        "SELECT (SELECT array_agg(code) FROM service_categories c WHERE c.service_id = s.id),"
        " (SELECT array_agg(area_code) FROM service_areas a WHERE a.service_id = s.id)"
        " FROM services s JOIN organizations o ON o.id = s.organization_id"
        " WHERE s.status = 'active' AND o.status = 'active'"
    )
    points_sql = text("SELECT latitude, longitude FROM services WHERE latitude IS NOT NULL")
    with app.app_context(), db.engine.connect() as connection:
        links = [(c, a) for c, a in connection.execute(links_sql) if c and a]
        points = [tuple(point) for point in connection.execute(points_sql)]
    if not links or not points:
        raise SystemExit("The database holds no searchable services with coordinates.")
    return Directory(links, points)


# --- the hub over HTTP --------------------------------------------------------------------


def gunicorn_installed():
    return importlib.util.find_spec("gunicorn") is not None


def _werkzeug_process(database_url, port):
    """Entry point of the server process. It is spawned, a fresh interpreter with only the hub
    in it, as a production worker: in a thread of this process the hub's garbage collector
    would also walk the benchmark's own data, and its pauses would show as latency."""
    app = make_hub(database_url, port)
    make_server("127.0.0.1", port, app, threaded=True).serve_forever()


@contextlib.contextmanager
def serve(database_url, port, kind):
    """The hub on 127.0.0.1 in a process of its own: gunicorn (2 workers x 2 threads, as in
    production) when installed, else werkzeug's threaded server."""
    if kind == "gunicorn":
        env = {
            **os.environ,
            **{k: str(v) for k, v in hub_settings(database_url, port).items()},
            "DATABASE_URL": database_url,
        }
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}"),
                *("--workers", "2", "--threads", "2", "--log-level", "warning"),
                "referral_hub.wsgi:app",
            ],
            env=env,
        )
        description = "gunicorn, 2 workers x 2 threads (gthread), own process"
        stop = process.wait
    else:
        spawn = multiprocessing.get_context("spawn")
        process = spawn.Process(target=_werkzeug_process, args=(database_url, port), daemon=True)
        process.start()
        reason = "" if gunicorn_installed() else " (gunicorn is not installed)"
        description = f"werkzeug threaded server (make_server), own process{reason}"
        stop = process.join
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz")
        yield description
    finally:
        process.terminate()
        stop(timeout=30)


def wait_until_up(url, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.ConnectionError):
            if requests.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"The hub did not answer on {url}.")


def partner_token(app, http, base_url):
    """A real access token from the hub's token endpoint, as a partner's system gets one."""
    with app.app_context():
        name = f"Bench partner {secrets.token_hex(4)}"
        organization = directory_service.create_organization(None, name, province="12")
        client, secret = auth_service.create_client(
            None,
            organization.id,
            "Bench client",
            ["directory:read"],
            ["client_credentials"],
            "client_secret_basic",
        )
        db.session.commit()
        client_id = client.client_id
    response = http.post(
        f"{base_url}/oauth/token",
        data={"grant_type": "client_credentials", "scope": "directory:read"},
        auth=(client_id, secret),
        timeout=15,
    )
    response.raise_for_status()
    return response.json()["access_token"]


# --- the queries --------------------------------------------------------------------------


def _district_link(rng, directory):
    while True:
        categories, areas = rng.choice(directory.links)
        districts = [code for code in areas if len(code) == 4]
        if districts:
            return rng.choice(categories), rng.choice(districts)


def category_district_age(rng, directory):
    category, district = _district_link(rng, directory)
    return {
        "category": category,
        "district": district,
        "age": rng.randint(5, 17),
        "accepting": "true",
    }


def text_query(rng, _directory):
    return {"q": rng.choice(WORDS)}


def near_point(rng, directory):
    latitude, longitude = rng.choice(directory.points)
    categories, _areas = rng.choice(directory.links)
    near = f"{latitude + rng.uniform(-0.2, 0.2):.4f},{longitude + rng.uniform(-0.2, 0.2):.4f}"
    return {"near": near, "category": rng.choice(categories)}


def category_province(rng, directory):
    categories, areas = rng.choice(directory.links)
    return {"category": rng.choice(categories), "province": rng.choice(areas)[:2]}


QUERIES = {
    "category+district+age": category_district_age,
    "text q": text_query,
    "near+category": near_point,
    "category+province": category_province,
}


# --- measuring ----------------------------------------------------------------------------


def percentile(values, p):
    """Nearest-rank percentile: a value that was actually measured."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def time_http(http, url, headers, parameter_sets):
    """Milliseconds per request, the body read; also how many hits each page had."""
    timings, hits = [], []
    for params in parameter_sets:
        started = time.perf_counter()
        response = http.get(url, params=params, headers=headers, timeout=30)
        timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"GET {response.url} -> {response.status_code}: {response.text}")
        hits.append(len(response.json()["items"]))
    return timings, hits


class Recorder:
    """Keeps the SQL (with its parameters) that the ORM sends while recording, so the
    benchmark can replay exactly what the search ran, without the ORM."""

    def __init__(self, engine):
        self.statements = None
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, _connection, _cursor, statement, parameters, _context, _executemany):
        if self.statements is not None:
            self.statements.append((statement, parameters))

    @contextlib.contextmanager
    def recording(self):
        self.statements = []
        try:
            yield self.statements
        finally:
            self.statements = None


def time_app(client, headers, parameter_sets):
    """The same requests through Flask's test client: the whole app (token check, argument
    parsing, search, serialisation, JSON) without socket and HTTP server."""
    timings = []
    for params in parameter_sets:
        started = time.perf_counter()
        response = client.get("/api/v1/services", query_string=params, headers=headers)
        timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"test client: {params} -> {response.status_code}")
    return timings


def time_search(app, recorder, parameter_sets):
    """search_services alone (its SQL and the ORM loading of the page and its links), in an
    app context per call as in a request; also returns the SQL each call sent."""
    timings, recorded = [], []
    for params in parameter_sets:
        with app.app_context():
            args = SearchArgs().load(params)
            page_args = {"limit": args.pop("limit"), "cursor": args.pop("cursor")}
            with recorder.recording() as statements:
                started = time.perf_counter()
                search.search_services(args, page_args)
                timings.append((time.perf_counter() - started) * 1000)
            db.session.remove()
        recorded.append(list(statements))
    return timings, recorded


def time_raw_sql(engine, recorded):
    """The recorded statements replayed on a bare DBAPI cursor, all rows fetched: the main
    SELECT alone, and all statements of the search (with the selectin loads of the links)."""
    main_ms, all_ms = [], []
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        for statements in recorded:
            total = 0.0
            for number, (statement, parameters) in enumerate(statements):
                started = time.perf_counter()
                cursor.execute(statement, parameters)
                cursor.fetchall()
                elapsed = (time.perf_counter() - started) * 1000
                total += elapsed
                if number == 0:
                    main_ms.append(elapsed)
            all_ms.append(total)
        connection.rollback()
    finally:
        connection.close()
    return main_ms, all_ms


def explain(engine, statement, parameters):
    """EXPLAIN (ANALYZE, BUFFERS) of a recorded main SELECT, and the indexes it used."""
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        connection.rollback()
    finally:
        connection.close()
    indexes = sorted(set(re.findall(r"(?:Scan|Scan Backward) (?:using|on) (ix_\w+|pk_\w+)", plan)))
    scanned = sorted(set(re.findall(r"Seq Scan on (\w+)", plan)))
    return plan, indexes, scanned


@dataclass
class Result:
    """Milliseconds per request of one kind of query, at each layer."""

    kind: str
    http: list
    hits: list
    app: list
    search: list
    sql_main: list
    sql_all: list
    sample: tuple  # (params, statement, parameters) for EXPLAIN


@dataclass
class Bench:
    """What every measurement needs: the hub (in-process and over HTTP) and the data."""

    app: object
    recorder: Recorder
    http: requests.Session
    base_url: str
    headers: dict
    directory: Directory
    rng: random.Random


def run_kind(bench, kind, make_params, count, limit):
    """One kind of query: warm up, then HTTP on every parameter set, then the first
    LAYER_SAMPLES of them in-process and as bare SQL, one layer after the other so that the
    layers never compete for the 2 cores. EXPLAIN takes the set with the median SQL time."""
    page = {"limit": limit} if limit else {}
    parameter_sets = [make_params(bench.rng, bench.directory) | page for _ in range(count)]
    warmup = [make_params(bench.rng, bench.directory) | page for _ in range(WARMUP_REQUESTS)]
    url = f"{bench.base_url}/api/v1/services"
    time_http(bench.http, url, bench.headers, warmup)
    http_ms, hits = time_http(bench.http, url, bench.headers, parameter_sets)
    layer_sets = parameter_sets[:LAYER_SAMPLES]
    client = bench.app.test_client()
    time_app(client, bench.headers, warmup[:20])
    app_ms = time_app(client, bench.headers, layer_sets)
    search_ms, recorded = time_search(bench.app, bench.recorder, layer_sets)
    sql_main, sql_all = time_raw_sql(engine_of(bench.app), recorded)
    sample_index = sql_main.index(percentile(sql_main, 50))
    sample = (layer_sets[sample_index], *recorded[sample_index][0])
    return Result(kind, http_ms, hits, app_ms, search_ms, sql_main, sql_all, sample)


def engine_of(app):
    with app.app_context():
        return db.engine


# --- reporting ----------------------------------------------------------------------------


def report(results, server, count, limit):
    """The table, and PASS/FAIL of the filtered searches against the target."""
    p = percentile
    page = f"limit {limit}" if limit else "limit 50 (the API default)"
    print(f"\nGET /api/v1/services, {count} requests per kind, {page}")
    print(f"server: {server}; client: one requests.Session with keep-alive\n")
    header = (
        f"{'query':<22}{'hits':>5}{'HTTP p50':>9}{'p95':>7}{'p99':>7}{'app':>7}{'search':>7}"
        f"{'SQL all':>8}{'SQL p50':>8}{'p95':>6}{'HTTP/SQL':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.kind:<22}{sum(r.hits) / len(r.hits):>5.0f}{p(r.http, 50):>9.1f}"
            f"{p(r.http, 95):>7.1f}{p(r.http, 99):>7.1f}{p(r.app, 50):>7.1f}{p(r.search, 50):>7.1f}"
            f"{p(r.sql_all, 50):>8.1f}{p(r.sql_main, 50):>8.1f}{p(r.sql_main, 95):>6.1f}"
            f"{p(r.http, 50) / p(r.sql_main, 50):>8.1f}x"
        )
    print(
        "\nms. hits: mean items per page. app: the same request through Flask's test client"
        " (no socket).\nsearch: search_services (SQL and ORM loading). SQL all: every statement"
        " of the search on a bare\ncursor; SQL: its main SELECT alone. HTTP/SQL: HTTP p50 / SQL"
        f" p50. app, search, SQL: the first {LAYER_SAMPLES} sets."
    )
    passed = True
    for r in results:
        p95 = percentile(r.http, 95)
        if r.kind in FILTERED_KINDS:
            verdict = "PASS" if p95 < TARGET_P95_MS else "FAIL"
            passed &= verdict == "PASS"
            print(f"{verdict}  {r.kind}: p95 {p95:.1f} ms (target < {TARGET_P95_MS:.0f} ms)")
        else:
            print(f"info  {r.kind}: p95 {p95:.1f} ms (reported, no target)")
    return passed


def print_plans(app, results):
    engine = engine_of(app)
    for r in results:
        params, statement, parameters = r.sample
        plan, indexes, scanned = explain(engine, statement, parameters)
        print(f"\n=== EXPLAIN (ANALYZE, BUFFERS): {r.kind} {params}")
        print(plan)
        print(f"--- indexes used: {', '.join(indexes) or 'none'}")
        print(f"--- sequential scans: {', '.join(scanned) or 'none'}")


# --- main ---------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="an existing, empty PostgreSQL database")
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per kind")
    parser.add_argument("--organizations", type=int, default=5000)
    parser.add_argument("--services", type=int, default=50000)
    parser.add_argument("--keep", action="store_true", help="keep the throwaway database")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure the directory already in --database-url (after --keep) without building",
    )
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--limit", type=int, help="page size to ask for (default: the API's, 50)")
    parser.add_argument(
        "--server",
        choices=("auto", "werkzeug", "gunicorn"),
        default="auto",
        help="auto: gunicorn when installed, else werkzeug",
    )
    return parser.parse_args(argv)


def describe_machine(app):
    with app.app_context(), db.engine.connect() as connection:
        version = connection.execute(text("SHOW server_version")).scalar()
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return f"{os.cpu_count()} cores, PostgreSQL {version}, load average {load}"


def measure(app, directory, database_url, port, args):
    """Serve the hub, get a token, and run every kind of query."""
    kind = args.server
    if kind == "auto":
        kind = "gunicorn" if gunicorn_installed() else "werkzeug"
    base_url = f"http://127.0.0.1:{port}"
    recorder = Recorder(engine_of(app))
    results = []
    with serve(database_url, port, kind) as server, requests.Session() as http:
        token = partner_token(app, http, base_url)
        headers = {"Authorization": f"Bearer {token}"}
        bench = Bench(app, recorder, http, base_url, headers, directory, random.Random(args.seed))
        for name, make_params in QUERIES.items():
            print(f"measuring {name} ...", flush=True)
            results.append(run_kind(bench, name, make_params, args.requests, args.limit))
    return results, server


def main(argv=None):
    args = parse_args(argv)
    if args.reuse and not args.database_url:
        raise SystemExit("--reuse needs --database-url (a database kept with --keep).")
    started = time.perf_counter()
    created = None
    if args.database_url:
        database_url = args.database_url
    else:
        database_url, created = create_database(SERVER_URL)
    check_local(database_url)
    print(f"database: {make_url(database_url).render_as_string(hide_password=True)}")
    try:
        port = free_port()
        app = make_hub(database_url, port)
        print(f"machine: {describe_machine(app)}")
        with app.app_context():
            upgrade()
        if args.reuse:
            print("reusing the directory in the database")
        else:
            print(f"building {args.organizations} organisations and {args.services} services ...")
            build(app, args.organizations, args.services, args.seed)
        directory = read_directory(app)
        # The benchmark's own objects need no garbage collection; without this, collections
        # in this process (service-layer timings) would walk them all.
        gc.freeze()
        built = time.perf_counter()
        print(f"  {len(directory.links)} searchable services; setup took {built - started:.0f} s")
        results, server = measure(app, directory, database_url, port, args)
        passed = report(results, server, args.requests, args.limit)
        print_plans(app, results)
        print(f"\nmachine at the end: {describe_machine(app)}")
        print(f"setup {built - started:.0f} s, measurements {time.perf_counter() - built:.0f} s")
        with app.app_context():
            db.engine.dispose()
    finally:
        if created and not args.keep:
            drop_database(SERVER_URL, created)
        elif created:
            print(f"kept database {created}: rerun with --database-url {database_url} --reuse")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
