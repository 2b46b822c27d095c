"""What the benchmarks share: a throwaway PostgreSQL database, the hub or the bare baseline
(shared/baselines, beside the repository) under gunicorn on a free 127.0.0.1 port, the CPU
the server's processes and the database's backends use, and a closed-loop HTTP load.

The bare baseline is the physical limit of this stack on this machine (a bare Flask app under
the same gunicorn settings, a GET that returns a small JSON object, a POST that does one
INSERT through psycopg2): these machines are shared and noisy, so a benchmark reports the hub
as a ratio to it, measured in the same run, beside its absolute figures."""

import contextlib
import importlib.util
import itertools
import math
import multiprocessing
import os
import platform
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

SERVER_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432"
SECRET_KEY = "bench-secret-key-" + "x" * 48
BASELINE_ENV = "HUB_BENCH_BASELINES"
BASELINE_DIR = Path(__file__).resolve().parents[2] / "shared" / "baselines"
DEADLINE_S = 300  # no closed-loop run lasts longer, whatever its count
KIT_SOURCE = Path(__file__).resolve().parent.parent / "partners" / "kit" / "src"
BASELINE_TABLE = (  # as shared/baselines/README.md gives it
    "CREATE TABLE IF NOT EXISTS baseline_referral"
    " (id bigserial primary key, body jsonb, created_at timestamptz default now())"
)


def main(parse_args, run, argv=None):
    """A benchmark's entry point: its arguments, the bare baseline found (before a long run,
    not after it), its run on a throwaway database; exit status 1 when a check failed."""
    args = parse_args(argv)
    baseline_dir()
    with (
        tempfile.TemporaryDirectory(prefix="hub_bench_") as instance,
        throwaway_database(args.database_url, args.keep) as database_url,
    ):
        os.environ.setdefault("HUB_INSTANCE_PATH", instance)  # the hub's keys, for this run
        passed = run(args, database_url)
    return 0 if passed else 1


# --- the database -------------------------------------------------------------------------


def check_local(database_url):
    """The benchmarks talk only to this machine."""
    host = make_url(database_url).host
    if host not in ("127.0.0.1", "localhost", None):
        raise SystemExit(f"Refusing to benchmark against {host}: use a database on 127.0.0.1.")


def _admin(statement):
    admin = create_engine(f"{SERVER_URL}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(statement))
    admin.dispose()


@contextlib.contextmanager
def throwaway_database(database_url=None, keep=False):
    """The URL of the database to benchmark: the one given, or a fresh `hub_bench_<random>`
    (the figures never depend on leftovers of an earlier run) dropped at the end unless kept."""
    if database_url:
        check_local(database_url)
        yield database_url
        return
    name = f"hub_bench_{secrets.token_hex(4)}"
    _admin(f'CREATE DATABASE "{name}"')
    database_url = f"{SERVER_URL}/{name}"
    try:
        yield database_url
    finally:
        if keep:
            print(f"Kept the database: {database_url}")
        else:
            _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate(app):
    from flask_migrate import upgrade

    with app.app_context():
        upgrade()


def hub_config(database_url, port=5000, **settings):
    """Testing settings as in tests/conftest.py, on this database, plus the benchmark's own."""
    return {
        "HUB_ENV": "testing",
        "SECRET_KEY": SECRET_KEY,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "HUB_ISSUER": f"http://127.0.0.1:{port}",
        "HUB_AUDIENCE": f"http://127.0.0.1:{port}/api",
        **settings,
    }


def organisation_with_service(kind, index, category, province):
    """A new organisation (its name made unique) with one service, through the directory's
    own rules; call it in an app context."""
    from referral_hub.directory import service as directory_service

    organization = directory_service.create_organization(
        None, f"Bench {kind} {index:03d} {secrets.token_hex(3)}", province=province
    )
    service = directory_service.create_service(
        None,
        organization.id,
        {"name": f"Bench service {index:03d}", "categories": [category], "areas": [province]},
    )
    return organization, service


def describe_machine(engine):
    with engine.connect() as connection:
        version = connection.execute(text("SHOW server_version")).scalar()
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, PostgreSQL {version}, "
        f"load average {load}"
    )


# --- CPU ----------------------------------------------------------------------------------


def _stat(pid):
    """(parent pid, CPU seconds) of a process, from /proc; None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu(pid):
    """CPU seconds used so far by one process; 0 when it is gone."""
    stat = _stat(pid)
    return stat[1] if stat else 0.0


def children_cpu(parent):
    """CPU seconds used so far by a process's children (gunicorn's workers)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(entry.name)
            if stat and stat[0] == parent:
                total += stat[1]
    return total


def backend_cpu(engine):
    """CPU seconds used so far by the PostgreSQL backends serving this engine's database (the
    server runs on this machine), to show the database's share of the work."""
    with engine.connect() as connection:
        pids = connection.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        ).scalars()
        return sum(stat[1] for stat in map(_stat, pids) if stat)


# --- servers ------------------------------------------------------------------------------


@dataclass
class Server:
    """A gunicorn on 127.0.0.1 and what its requests cost: its workers' CPU and the database's."""

    url: str
    process: subprocess.Popen
    engine: object
    description: str

    def cpu(self):
        """(workers, database) CPU seconds so far; subtract two readings."""
        return children_cpu(self.process.pid), backend_cpu(self.engine)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url, process, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(requests.ConnectionError, requests.Timeout):
            if requests.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"The server did not answer on {url}.")


@contextlib.contextmanager
def gunicorn(app_path, env, engine, workers, threads, ready_path, folder=None, port=None):
    """`gunicorn app_path` on 127.0.0.1 with these workers and threads (gthread when more than
    one), in a process of its own; stopped at the end."""
    port = port or free_port()
    command = [
        *(sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}"),
        *("--workers", str(workers), "--threads", str(threads), "--log-level", "warning"),
        *(("--chdir", str(folder)) if folder else ()),
        app_path,
    ]
    process = subprocess.Popen(command, env={**os.environ, **env})
    url = f"http://127.0.0.1:{port}"
    kind = f"{threads} threads (gthread)" if threads > 1 else "sync"
    description = f"gunicorn {app_path}, {workers} workers x {kind}"
    try:
        wait_until_up(url + ready_path, process)
        yield Server(url, process, engine, description)
    finally:
        process.terminate()
        process.wait(timeout=30)


def baseline_dir():
    """shared/baselines beside the repository (CI keeps a read-only copy of shared/ beside the
    clone), or where HUB_BENCH_BASELINES says."""
    folder = Path(os.environ.get(BASELINE_ENV) or BASELINE_DIR)
    missing = [name for name in ("bare_app.py", "post.lua") if not (folder / name).is_file()]
    if missing:
        raise SystemExit(
            f"The bare baseline is missing: {folder} has no {', '.join(missing)}. The benchmarks "
            f"compare the hub with it in the same run; put shared/ beside the repository or set "
            f"{BASELINE_ENV} to its baselines folder."
        )
    return folder


def baseline_body():
    """The referral-sized JSON body that the baseline's wrk script (post.lua) POSTs."""
    script = (baseline_dir() / "post.lua").read_text()
    found = re.search(r"wrk\.body\s*=\s*'([^']*)'", script)
    if not found:
        raise SystemExit("shared/baselines/post.lua sets no wrk.body.")
    return found.group(1).encode()


def dsn(database_url):
    """The psycopg2 connection string of a database URL, as the bare apps take it."""
    url = make_url(database_url)
    return f"dbname={url.database} user={url.username} host={url.host} port={url.port or 5432}"


@contextlib.contextmanager
def bare_app(database_url, workers, threads):
    """The bare baseline under the given gunicorn settings, its POST writing into this run's
    database (the table it needs is created there)."""
    folder = baseline_dir()
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text(BASELINE_TABLE))
    env = {"BASELINE_DSN": dsn(database_url)}
    try:
        with gunicorn("bare_app:app", env, engine, workers, threads, "/hello", folder) as server:
            yield server
    finally:
        engine.dispose()


# --- load ---------------------------------------------------------------------------------


def _client(url, requests_, warmup, headers, inspect, barrier, deadline_s, results):
    """One client process: the warm-up requests, then, from the moment every client is ready,
    its requests one after another over one keep-alive session; per request its ms, its
    parameters and what inspect saw."""
    seen = []
    with requests.Session() as session:
        for params in warmup:
            session.get(url, params=params, headers=headers, timeout=30)
        barrier.wait()
        stop = time.monotonic() + deadline_s
        for params in requests_:
            if time.monotonic() > stop:
                break
            started = time.perf_counter()
            response = session.get(url, params=params, headers=headers, timeout=30)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                results.put(("error", f"GET {response.url} -> {response.status_code}"))
                return
            seen.append((elapsed, params, inspect(response) if inspect else None))
    results.put(("done", seen))


@dataclass
class Load:
    """What a closed-loop run did: (ms, parameters, what inspect saw) per request answered, and
    the wall time from the common start to the last answer."""

    seen: list
    seconds: float
    asked: int
    cpu_seconds: float  # the server's workers and database backends

    @property
    def ms(self):
        return [ms for ms, _, _ in self.seen]

    @property
    def throughput(self):
        return len(self.seen) / self.seconds if self.seconds else math.nan

    @property
    def cpu_ms(self):
        """The server's CPU per request answered."""
        return self.cpu_seconds / len(self.seen) * 1000 if self.seen else math.nan


def closed_loop(server, path, parameter_sets, clients, headers=None, inspect=None, warmup=()):
    """`clients` processes (their own GILs, as separate users) share the parameter sets and
    each sends its share one request after another, stopping after DEADLINE_S (each first sends
    the warm-up sets, untimed). inspect, a module-level function, reads each response (spawned
    processes take it by name). The server's CPU (workers and database) is read at the common
    start and at the end."""
    url, deadline_s = server.url + path, DEADLINE_S
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(clients + 1), context.Queue()
    processes = [
        context.Process(
            target=_client,
            args=(
                url,
                parameter_sets[n::clients],
                list(warmup)[n::clients] or [{}],
                headers,
                inspect,
                barrier,
                deadline_s,
                results,
            ),
            daemon=True,
        )
        for n in range(clients)
    ]
    for process in processes:
        process.start()
    barrier.wait(timeout=180)
    started, cpu_before = time.perf_counter(), server.cpu()
    seen = []
    for _ in processes:
        outcome, value = results.get(timeout=deadline_s + 60)
        if outcome == "error":
            raise SystemExit(value)
        seen += value
    seconds = time.perf_counter() - started
    cpu = sum(server.cpu()) - sum(cpu_before)
    for process in processes:
        process.join(timeout=30)
    return Load(seen, seconds, len(parameter_sets), cpu)


def ticks(start, rate):
    """Wait for each moment of a steady `rate` per second from `start` on; yields how late
    each one began (0 when on time)."""
    for tick in itertools.count():
        delay = start + tick / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        yield max(0.0, -delay)


def in_step(work, count, rate, threads, start):
    """Run `work(number, share of count, share of rate, its start)` in `threads` threads,
    interleaved so that together they go at a steady `rate`; return when all are done."""
    running = [
        threading.Thread(
            target=work,
            args=(number, count // threads + (number < count % threads), rate / threads),
            kwargs={"start": start + number / rate},
        )
        for number in range(threads)
    ]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()


def partner_kit():
    """Make the partner kit (partners/kit) importable, installed or not: the receivers stand
    for the partners' machines."""
    if importlib.util.find_spec("referral_hub_kit") is None:
        sys.path.insert(0, str(KIT_SOURCE))
