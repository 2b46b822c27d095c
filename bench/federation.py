"""Federation benchmark: referrals forwarded to a peer hub, and their answers coming back.

How long a referral sent to hub A for a service of hub B takes to be at B, and how long B's
answer takes to be at A.

Two hubs, A and B, each with its own database (SQLite files by default, or two throwaway
PostgreSQL databases with --postgresql), are set up with the `referral-hub` command line as
coordinators do it and as tests/hubs.py does for the federation tests: B loads the seed
directory and invites A, A adds B as a peer (which subscribes A to B's callbacks) and syncs
B's directory. Each hub is served as in production: `gunicorn referral_hub.wsgi:app`
(--workers x --threads) and one `referral-hub worker` (scheduler, callback dispatcher,
forwarder), with production's callback settings (poll CALLBACK_POLL_SECONDS, retry schedule,
lease); `--runner single` uses tests/hubs.py's single process instead.

A third process stands for the organisations' own systems, with the partner kit: a
CallbackReceiver subscribed at B (POST /api/v1/subscriptions, a real token) to
`referral.created` for M'Lop Tapang, the organisation of the service referred to, which
accepts each new referral at B (GET it, then `received` and `accepted` with If-Match and the
version), as a receiving caseworker's system would; and a CallbackReceiver subscribed at A to
`referral.status_changed` for the sending organisation.

This process POSTs --count referrals to A (a real client-credentials token of the sending
organisation) for B's ChildSafe Hotline, at a steady --rate from --streams threads. Each
referral's child has a given name of its own (consented to), which is how a referral at B is
matched with the one the bench sent to A. Per referral:

- created at A -> visible at B: B's `created_at` minus A's `created_at` (also: -> B's
  receiver told, its callback's receipt);
- accepted at B -> visible at A: A's time of the `accepted` status (the timestamp of A's
  callback to the sender) minus B's `updated_at` in the answer to the accept (also: -> A's
  sender told, its callback's receipt).

The report gives counts, p50 and p95 of both delays and PASS/FAIL for p95 under 2 s. The
checks count against what the bench sent, not against the hubs' tables: every referral the
bench created at A is at B exactly once (B's received referrals, listed through B's API, and
B's callbacks, by the child's name), was accepted there once, and is accepted at A (A's
callback to the sender, and A's API); nothing else arrived. The exit status is 1 when one
fails; --sabotage shows them failing: leave-one (B's receiver never answers the first
referral: "none lost" and "answers back" fail), send-twice (one child is sent to A a second
time under another Idempotency-Key, unrecorded: "none duplicated" fails).

In the same run the bare baseline (shared/baselines: a bare Flask POST doing one psycopg2
INSERT of a referral-sized body, always on a throwaway PostgreSQL database) takes
--baseline-requests POSTs one after another on the same gunicorn settings, for one figure of
this machine's speed: the report gives each delay's p50 and p95 over the bare POST's.

    python bench/federation.py [--count 1000] [--rate 3] [--streams 2] [--answerers 4]
        [--postgresql postgresql+psycopg2://postgres@127.0.0.1:5432/postgres]
        [--runner gunicorn|single] [--workers 2] [--threads 2] [--poll-seconds 1]
        [--drain-seconds 120] [--baseline-requests 500] [--sabotage leave-one|send-twice]
"""

import argparse
import contextlib
import math
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's hub and its tests' two-hub setup

import harness  # noqa: E402
import requests  # noqa: E402

from tests.hubs import HOTLINE, MLOP_TAPANG, SEED, Hub, private_database  # noqa: E402
from tests.referral_fixtures import referral_body  # noqa: E402

TARGET_P95_S = 2.0
SCOPES = "referrals:read referrals:write directory:read callbacks:manage"
PEER = "Phnom Penh network"  # B, as A knows it
# tests/hubs.py compresses these for the tests; the bench runs with production's defaults.
TEST_SETTINGS = (
    "CALLBACK_POLL_SECONDS",
    "CALLBACK_RETRY_SCHEDULE",
    "CALLBACK_LEASE_SECONDS",
    "CALLBACK_TOTAL_TIMEOUT",
)


# --- the hubs -----------------------------------------------------------------------------


def build_hubs(args, folder, databases):
    """Hubs A and B on these databases, B's directory loaded, an API client for the receiving
    organisation at B and for a new sending organisation at A."""
    settings = {"CALLBACK_POLL_SECONDS": args.poll_seconds}
    hubs = [
        Hub(name, url, harness.free_port(), folder, **settings)
        for name, url in zip(("a", "b"), databases, strict=True)
    ]
    for hub in hubs:
        for key in TEST_SETTINGS:
            if key not in settings:
                hub.env.pop(key)
    a, b = hubs
    b.cli("directory", "import", str(SEED))
    b.client = b.cli("create-client", "--org", MLOP_TAPANG, "--scopes", SCOPES)
    sender = a.cli("create-org", "--name", "Siem Reap Children's Shelter", "--province", "17")
    a.organization_id = sender["id"]
    a.client = a.cli("create-client", "--org", sender["id"], "--scopes", SCOPES)
    return a, b


def peer(a, b):
    """As coordinators do it: B invites A, A adds B (and subscribes to its callbacks), syncs."""
    invitation = b.cli("peers", "invite", "--name", "Siem Reap network")
    a.cli(
        "peers", "add", "--name", PEER, "--url", b.url,
        "--client-id", invitation["client_id"], "--client-secret-stdin",
        stdin=invitation["client_secret"] + "\n",
    )  # fmt: skip
    synced = a.cli("peers", "sync", PEER)[PEER]
    if not synced["ok"]:
        raise SystemExit(f"A could not sync B's directory: {synced}")


def wait_for_log(hub, text, process, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        if text in hub.log.read_text():
            return
        time.sleep(0.2)
    raise SystemExit(f"{hub.name}'s worker did not start: {hub.log.read_text()[-2000:]}")


@dataclass
class Serving:
    """How a hub is served, and the CPU seconds its processes used so far."""

    description: str
    cpu: Callable[[], float]


@contextlib.contextmanager
def served(hub, args):
    """The hub as production serves it (gunicorn and one `referral-hub worker`), or in
    tests/hubs.py's single process; stopped at the end."""
    if args.runner == "single":
        hub.start()
        try:
            yield Serving(
                "one process (werkzeug, threaded, with the scheduler and dispatcher)",
                lambda: harness.process_cpu(hub.process.pid),
            )
        finally:
            hub.stop()
        return
    gunicorn = [
        *(sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{hub.port}"),
        *("--workers", str(args.workers), "--threads", str(args.threads)),
        *("--log-level", "warning", "referral_hub.wsgi:app"),
    ]
    worker = [sys.executable, "-m", "referral_hub", "worker"]
    processes = []
    with open(hub.log, "a") as log:
        try:
            for command in (gunicorn, worker):
                processes.append(
                    subprocess.Popen(
                        command, cwd=ROOT, env=hub.env, stdout=log, stderr=subprocess.STDOUT
                    )
                )
            harness.wait_until_up(f"{hub.url}/readyz", processes[0])
            wait_for_log(hub, "scheduler running", processes[1])
            web, worker = processes
            yield Serving(
                f"gunicorn referral_hub.wsgi:app, {args.workers} workers x {args.threads} "
                "threads, and one `referral-hub worker`",
                lambda: harness.children_cpu(web.pid) + harness.process_cpu(worker.pid),
            )
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=30)


def subscribe(hub, client, url, event_type):
    """The organisation's system registers its receiver, with a real token; its secret."""
    http = hub.api(client, "callbacks:manage")
    response = http.post(
        f"{hub.url}/api/v1/subscriptions", json={"url": url, "event_types": [event_type]}
    )
    if response.status_code != 201:
        raise SystemExit(f"{hub.name}: subscription refused: {response.text}")
    return response.json()["secret"]


# --- the organisations' systems -----------------------------------------------------------


def serve_receivers(spec, pipe):
    """Child process: the receiving organisation's system at B (accepts every new referral)
    and the sending organisation's at A (records the answers). Answers "count" with (accepted
    at B, accepted callbacks at A) and "stop" with everything it saw."""
    harness.partner_kit()
    from referral_hub_kit import CallbackReceiver, HubClient

    at_b = CallbackReceiver(spec["b_secret"], port=spec["b_port"]).start()
    at_a = CallbackReceiver(spec["a_secret"], port=spec["a_port"]).start()
    local = threading.local()
    answered, errors, stopping = [], [], threading.Event()

    def accept(event):
        if not hasattr(local, "client"):
            local.client = HubClient(spec["b_url"], *spec["b_client"], scope=SCOPES)
        client, referral_id = local.client, event["payload"]["data"]["referral_id"]
        try:
            referral = client.get_referral(referral_id)
            received = client.change_status(referral_id, "received", referral["version"])
            accepted = client.change_status(referral_id, "accepted", received["version"])
        except Exception as exc:  # recorded, and the referral counts as not accepted
            errors.append(f"{referral_id}: {exc!r}")
            return
        answered.append(
            {
                "id": referral_id,
                "name": referral["subject"]["identity"]["given_name"],
                "accepted_at": accepted["updated_at"],
            }
        )

    def watch(pool):
        seen = 1 if spec["sabotage"] == "leave-one" else 0  # the first is never answered
        while not stopping.is_set():
            if at_b.wait_for(seen + 1, timeout=0.2):
                events = at_b.events
                for event in events[seen:]:
                    pool.submit(accept, event)
                seen = len(events)

    with ThreadPoolExecutor(spec["answerers"]) as pool:
        watcher = threading.Thread(target=watch, args=(pool,), daemon=True)
        watcher.start()
        pipe.send("ready")
        while pipe.recv() == "count":
            pipe.send((len(answered), sum(accepted_status(e) for e in at_a.events)))
        stopping.set()
        watcher.join()
    pipe.send(
        {
            "answered": answered,
            "errors": errors,
            "created_events": [
                (e["payload"]["data"]["referral_id"], e["received_at"]) for e in at_b.events
            ],
            "answers_at_a": [
                {**e["payload"]["data"], "timestamp": e["payload"]["timestamp"]}
                | {"told_at": e["received_at"]}
                for e in at_a.events
            ],
            "duplicates": at_a.duplicates + at_b.duplicates,
            "rejected": len(at_a.rejected) + len(at_b.rejected),
        }
    )
    at_a.stop(), at_b.stop()


def accepted_status(event):
    return event["payload"]["data"]["status"] == "accepted"


def start_receivers(spec):
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=serve_receivers, args=(spec, theirs), daemon=True)
    process.start()
    if not ours.poll(60) or ours.recv() != "ready":
        raise SystemExit("The receivers did not start.")
    return process, ours


# --- sending ------------------------------------------------------------------------------


@dataclass
class Sent:
    """What the bench sent to A: per referral A's id, A's created_at and the child's name."""

    referrals: dict = field(default_factory=dict)  # A's id -> (name, A's created_at)
    errors: list = field(default_factory=list)
    lag: float = 0.0
    started: float = 0.0
    finished: float = 0.0
    drained: float = 0.0
    cpu: dict = field(default_factory=dict)  # CPU seconds from the first send to the drain
    retries: dict = field(default_factory=dict)  # per hub, from its own records


def send(a, args, sent):
    """--count referrals to B's service at a steady --rate from --streams threads, each with
    its own token of the sending organisation."""
    harness.partner_kit()
    from referral_hub_kit import HubClient

    def stream(number, count, rate, start):
        client = HubClient(a.url, a.client["client_id"], a.client["client_secret"], SCOPES)
        for n, lag in zip(range(count), harness.ticks(start, rate), strict=False):
            sent.lag = max(sent.lag, lag)
            name = f"Bench {number}-{n}"
            body = referral_body(HOTLINE, subject__identity__given_name=name)
            try:
                created = client.create_referral(body, idempotency_key=f"bench-{number}-{n}")
            except Exception as exc:  # an error is a referral not sent, reported as such
                sent.errors.append(repr(exc))
                continue
            sent.referrals[created["id"]] = (name, created["created_at"])
            if args.sabotage == "send-twice" and number == n == 0:
                client.create_referral(body, idempotency_key="bench-again")

    sent.started = time.time()
    harness.in_step(stream, args.count, args.rate, args.streams, sent.started)
    sent.finished = time.time()


def drain(pipe, expected, seconds):
    """Wait until the sender has heard of every acceptance, or nothing moved for `seconds`."""
    last, moved = None, time.monotonic()
    while True:
        pipe.send("count")
        counts = pipe.recv()
        if counts[1] >= expected:
            return counts
        if counts != last:
            last, moved = counts, time.monotonic()
        elif time.monotonic() - moved > seconds:
            return counts
        time.sleep(0.5)


def listed(hub, client, **params):
    """Every referral the organisation sees with these filters, through the hub's API."""
    http, items, cursor = hub.api(client, "referrals:read"), [], None
    while True:
        page = http.get(
            f"{hub.url}/api/v1/referrals", params={**params, "limit": 100, "cursor": cursor}
        )
        page.raise_for_status()
        items += page.json()["items"]
        cursor = page.json().get("next_cursor")
        if not cursor:
            return items


def children(hub, items):
    """(id, the child's given name, created_at) of each referral: one GET each, as a list
    shows no personal data."""
    http = hub.api(hub.client, "referrals:read")
    found = []
    for item in items:
        referral = http.get(f"{hub.url}/api/v1/referrals/{item['id']}")
        referral.raise_for_status()
        name = referral.json()["subject"]["identity"]["given_name"]
        found.append((item["id"], name, item["created_at"]))
    return found


RETRIES = """
from collections import Counter
from referral_hub.callbacks.models import DeliveryAttempt
from referral_hub.federation.models import Forward
forwards = db.session.scalars(db.select(Forward).where(Forward.attempts > 0)).all()
failed = db.session.scalars(db.select(DeliveryAttempt).where(
    db.or_(DeliveryAttempt.status_code.is_(None), DeliveryAttempt.status_code >= 300))).all()
print(json.dumps({
    "forwards retried": Counter(f"{f.last_error}"[:80] for f in forwards).most_common(3),
    "callback attempts failed": Counter(
        f"{a.status_code or a.error} {a.response_excerpt or ''}"[:80] for a in failed
    ).most_common(3),
}))
"""


def retries(hub):
    """What the hub retried and why, from its own records (a figure to explain a delay, not a
    count the checks rely on)."""
    return hub.python(RETRIES)


# --- the checks and the figures -----------------------------------------------------------


def moment(iso):
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def percentile(values, fraction):
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


@dataclass
class Outcome:
    delays: dict  # label -> seconds per referral
    checks: list  # (label, passed)
    counts: str


def analyse(sent, seen, at_b, at_a):
    """Delays per referral and the checks, against what the bench sent to A."""
    names = {name: (a_id, created) for a_id, (name, created) in sent.referrals.items()}
    at_b_names = Counter(name for _, name, _ in at_b)
    first_at_b = {name: (b_id, created) for b_id, name, created in reversed(at_b)}
    created_ids = Counter(b_id for b_id, _ in seen["created_events"])
    told_b = dict(reversed(seen["created_events"]))  # B's id -> first receipt
    answered = {}
    for answer in seen["answered"]:
        answered.setdefault(answer["name"], []).append(answer)
    back = Counter(e["referral_id"] for e in seen["answers_at_a"] if e["status"] == "accepted")
    told_a = {e["referral_id"]: e for e in seen["answers_at_a"] if e["status"] == "accepted"}
    status_at_a = {item["id"]: item["status"] for item in at_a}

    delays = {key: [] for key in ("visible at B", "B told", "visible at A", "A told")}
    for name, (a_id, created) in names.items():
        if name in first_at_b:
            b_id, created_at_b = first_at_b[name]
            delays["visible at B"].append(moment(created_at_b) - moment(created))
            if b_id in told_b:
                delays["B told"].append(told_b[b_id] - moment(created))
        for answer in answered.get(name, [])[:1]:
            if a_id in told_a:
                accepted = moment(answer["accepted_at"])
                delays["visible at A"].append(moment(told_a[a_id]["timestamp"]) - accepted)
                delays["A told"].append(told_a[a_id]["told_at"] - accepted)

    not_at_b = [n for n in names if at_b_names[n] == 0]
    twice_at_b = [n for n in names if at_b_names[n] > 1]
    strangers = [n for n in at_b_names if n not in names]
    not_accepted = [n for n in names if len(answered.get(n, [])) != 1]
    not_back = [n for n, (a_id, _) in names.items() if back[a_id] != 1]
    not_accepted_at_a = [n for n, (a_id, _) in names.items() if status_at_a.get(a_id) != "accepted"]
    checks = [
        (
            f"sent: {len(sent.referrals):,} of the referrals asked were created at A "
            f"({len(sent.errors)} refused)",
            not sent.errors,
        ),
        (
            f"none lost at B: {len(names) - len(not_at_b):,} of {len(names):,} are among B's "
            "received referrals (B's API)",
            not not_at_b,
        ),
        (
            f"accepted at B: {len(names) - len(not_accepted):,} of {len(names):,} once by B's "
            "receiver",
            not not_accepted,
        ),
        (
            f"none duplicated: {len(twice_at_b)} at B more than once, {len(strangers)} at B "
            f"that the bench did not send, {sum(c - 1 for c in created_ids.values())} "
            f"`referral.created` twice",
            not twice_at_b and not strangers and all(c == 1 for c in created_ids.values()),
        ),
        (
            f"answers back: {len(names) - len(not_back):,} of {len(names):,} accepted once in "
            f"A's callbacks to the sender, {len(names) - len(not_accepted_at_a):,} accepted in "
            "A's API",
            not not_back and not not_accepted_at_a,
        ),
    ]
    for label, key in (("created at A -> visible at B", "visible at B"),
                       ("accepted at B -> visible at A", "visible at A")):  # fmt: skip
        p95 = percentile(delays[key], 0.95)
        checks.append(
            (f"{label}: p95 under {TARGET_P95_S:.0f} s ({p95:.2f} s)", p95 < TARGET_P95_S)
        )
    first = (not_at_b + twice_at_b + not_accepted + not_back)[:5]
    counts = (
        f"sent {len(names):,}; at B {sum(at_b_names.values()):,} ({len(at_b_names):,} children); "
        f"accepted by B's receiver {len(seen['answered']):,} ({len(seen['errors'])} errors); "
        f"accepted callbacks at A {sum(back.values()):,}; repeats of a webhook-id "
        f"{seen['duplicates']}, callbacks refused by the receivers {seen['rejected']}"
        + (f"; first missing or doubled: {first}" if first else "")
        + (
            f"; first errors: {(sent.errors + seen['errors'])[:3]}"
            if sent.errors or seen["errors"]
            else ""
        )
    )
    return Outcome(delays, checks, counts)


def run_bare(args, base_url, folder):
    """The bare POST /insert, one request after another (after 20 to warm up), on the hubs'
    gunicorn settings: round trips in seconds and a description."""
    url, drop = private_database(base_url, folder, "bench-fed-bare")
    body, headers = harness.baseline_body(), {"Content-Type": "application/json"}
    try:
        with (
            harness.bare_app(url, args.workers, args.threads) as server,
            requests.Session() as http,
        ):
            times = []
            for n in range(20 + args.baseline_requests):
                started = time.perf_counter()
                response = http.post(f"{server.url}/insert", data=body, headers=headers, timeout=30)
                if response.status_code != 201:
                    raise SystemExit(f"The bare baseline failed: {response.status_code}")
                if n >= 20:
                    times.append(time.perf_counter() - started)
            return times, server.description
    finally:
        drop()


def ms(seconds):
    return "-" if math.isnan(seconds) else f"{seconds * 1000:,.0f}"


def report(args, described, sent, outcome, bare, bare_description, load_before):
    print()
    database = "PostgreSQL (two throwaway databases)" if args.postgresql else "SQLite files"
    print(
        f"Federation: {args.count:,} referrals to a service of hub B, sent to hub A at "
        f"{args.rate:g}/s from {args.streams} stream(s); each hub on {database}, served by "
        f"{described}; CALLBACK_POLL_SECONDS {args.poll_seconds:g}; B's receiver answers with "
        f"{args.answerers} threads"
    )
    print(
        f"  machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    produced = sent.finished - sent.started
    print(
        f"Sent: {len(sent.referrals):,} in {produced:.1f} s = {len(sent.referrals) / produced:.1f}"
        f"/s (at most {sent.lag * 1000:.0f} ms behind the schedule)"
    )
    print(f"Counts: {outcome.counts}")
    window, count = sent.drained - sent.started, max(len(sent.referrals), 1)
    print(
        f"CPU from the first send to the last answer ({window:.1f} s): "
        + ", ".join(
            f"{name} {seconds:.1f} s ({seconds / window:.0%} of a core, "
            f"{seconds / count * 1000:.0f} ms a referral)"
            for name, seconds in sent.cpu.items()
        )
    )
    print(f"Retries (most common reasons, as each hub recorded them): {sent.retries}")
    print("Delays per referral (ms):")
    print(f"  {'':44s}{'count':>7s}{'p50':>8s}{'p95':>8s}{'max':>8s}")
    labels = {
        "visible at B": "created at A -> visible at B",
        "B told": "created at A -> B's receiver told",
        "visible at A": "accepted at B -> visible at A",
        "A told": "accepted at B -> A's sender told",
    }
    for key, label in labels.items():
        values = outcome.delays[key]
        print(
            f"  {label:44s}{len(values):7,d}{ms(percentile(values, 0.5)):>8s}"
            f"{ms(percentile(values, 0.95)):>8s}{ms(max(values, default=math.nan)):>8s}"
        )
    tenth = max(1, len(outcome.delays["visible at B"]) // 10)
    print(
        "  p50 of the first and of the last tenth sent (when it grows, a backlog: the hubs did "
        "not keep up with --rate): "
        + "; ".join(
            f"{labels[key]} {ms(percentile(outcome.delays[key][:tenth], 0.5))} and "
            f"{ms(percentile(outcome.delays[key][-tenth:], 0.5))}"
            for key in ("visible at B", "visible at A")
        )
    )
    bare_p50, bare_p95 = percentile(bare, 0.5), percentile(bare, 0.95)
    print(
        f"Bare baseline in this run: shared/baselines/bare_app.py's POST /insert (one psycopg2 "
        f"INSERT) on {bare_description}, {len(bare):,} POSTs one after another: p50 "
        f"{ms(bare_p50)} ms, p95 {ms(bare_p95)} ms"
    )
    ratios = "; ".join(
        f"{labels[key]} p50 {percentile(outcome.delays[key], 0.5) / bare_p50:,.0f}x, p95 "
        f"{percentile(outcome.delays[key], 0.95) / bare_p95:,.0f}x"
        for key in ("visible at B", "visible at A")
    )
    print(f"  hub / bare (figures, not targets): {ratios}")
    print("Checks:")
    for label, passed in outcome.checks:
        print(f"  {'PASS' if passed else 'FAIL'}  {label}")
    return all(passed for _, passed in outcome.checks)


# --- main ---------------------------------------------------------------------------------


def run(args, folder):
    load_before = os.getloadavg()[0]
    print("Setting up hubs A and B ...", flush=True)
    databases = [
        private_database(args.postgresql or "sqlite", folder, f"bench-fed-{name}")
        for name in ("a", "b")
    ]
    try:
        a, b = build_hubs(args, folder, [url for url, _ in databases])
        with served(a, args) as serving_a, served(b, args) as serving_b:
            peer(a, b)
            ports = {"a_port": harness.free_port(), "b_port": harness.free_port()}
            spec = {
                **ports,
                "b_secret": subscribe(
                    b, b.client, f"http://127.0.0.1:{ports['b_port']}/callbacks", "referral.created"
                ),
                "a_secret": subscribe(
                    a,
                    a.client,
                    f"http://127.0.0.1:{ports['a_port']}/callbacks",
                    "referral.status_changed",
                ),
                "b_url": b.url,
                "b_client": (b.client["client_id"], b.client["client_secret"]),
                "answerers": args.answerers,
                "sabotage": args.sabotage,
            }
            receivers, pipe = start_receivers(spec)
            print(f"Sending {args.count:,} referrals at {args.rate:g}/s ...", flush=True)
            sent = Sent()
            before = serving_a.cpu(), serving_b.cpu(), harness.process_cpu(receivers.pid)
            send(a, args, sent)
            drain(pipe, len(sent.referrals), args.drain_seconds)
            after = serving_a.cpu(), serving_b.cpu(), harness.process_cpu(receivers.pid)
            names = ("A", "B", "receivers")
            sent.cpu = {n: end - start for n, end, start in zip(names, after, before, strict=True)}
            sent.drained = time.time()
            pipe.send("stop")
            seen = pipe.recv()
            receivers.join(timeout=30)
            at_b = children(b, listed(b, b.client, role="received"))
            at_a = listed(a, a.client, role="sent")
            sent.retries = {"A": retries(a), "B": retries(b)}
    finally:
        for _, drop in databases:
            if drop:  # a throwaway PostgreSQL database; SQLite files go with the folder
                drop()
    outcome = analyse(sent, seen, at_b, at_a)
    print("Posting to the bare baseline ...", flush=True)
    bare, bare_description = run_bare(
        args, args.postgresql or f"{harness.SERVER_URL}/postgres", folder
    )
    return report(args, serving_a.description, sent, outcome, bare, bare_description, load_before)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="referrals sent to A")
    parser.add_argument("--rate", type=float, default=3, help="referrals sent per second")
    parser.add_argument("--streams", type=int, default=2, help="sending threads sharing --rate")
    parser.add_argument(
        "--postgresql",
        metavar="URL",
        help="a PostgreSQL server's URL (e.g. postgresql+psycopg2://postgres@127.0.0.1:5432/"
        "postgres): each hub gets a throwaway database there, dropped at the end",
    )
    parser.add_argument("--runner", choices=("gunicorn", "single"), default="gunicorn")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per hub")
    parser.add_argument("--threads", type=int, default=2, help="threads per gunicorn worker")
    parser.add_argument("--poll-seconds", type=float, default=1.0, help="CALLBACK_POLL_SECONDS")
    parser.add_argument("--answerers", type=int, default=4, help="B's receiver's threads")
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=120,
        help="how long to wait for the last answers once nothing moves",
    )
    parser.add_argument("--baseline-requests", type=int, default=500)
    parser.add_argument(
        "--sabotage",
        choices=("leave-one", "send-twice"),
        help="B's receiver leaves the first referral unanswered, or the bench sends one child "
        "twice under another Idempotency-Key, to see the checks fail",
    )
    args = parser.parse_args(argv)
    if args.count < 1 or args.rate <= 0 or not 1 <= args.streams <= args.count:
        parser.error("give at least one referral, a positive rate and 1 to --count streams")
    if args.postgresql:
        harness.check_local(args.postgresql)
    return args


def main(argv=None):
    args = parse_args(argv)
    harness.baseline_dir()  # before a long run, not after it
    with tempfile.TemporaryDirectory(prefix="hub_bench_fed_") as folder:
        return 0 if run(args, Path(folder)) else 1


if __name__ == "__main__":
    sys.exit(main())
