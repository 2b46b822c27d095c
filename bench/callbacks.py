"""Status callbacks benchmark: time from commit to receipt under a steady stream of changes.

Builds 20 partner organisations on a throwaway PostgreSQL database, each subscribed to its own
callback receiver (the partner kit's `CallbackReceiver`) on 127.0.0.1, one in five of them
answering 503 to half of its requests. 500 referrals between them are then moved along the
state machine by `referrals.service.change_status` (a referral that reaches a terminal state is
replaced by a new one, whose `referral.created` is an event too) at a steady rate, each change
committed on its own by --producers threads (web workers), while the hub's own `Dispatcher`
threads deliver the outbox. Every event gets its commit time (taken right after the commit)
and the partners that must hear of it (a new referral its receiver, a status change both
parties); every webhook-id its first receipt time at the receiver, and the referral and version
its body names. The report gives commit-to-receipt latency (median, p95, p99; partners with and
without failures apart), throughput and where the CPU goes. It checks, against what the
producers made (not against the hub's outbox): none lost (every event at every partner that
must hear of it), exactly once (none elsewhere, none under a second webhook-id), in order (at
each partner, each referral's events by first receipt in version order); and the fixed targets,
p95 under 1 s at 100 events/s.

In the same run, the bare baseline (shared/baselines: a bare Flask POST doing one psycopg2
INSERT of a referral-sized body) is posted to at the same rate, on gunicorn with a sync worker
per producer thread, for --baseline-seconds; the report gives hub / bare for CPU per event
(producer, worker and database for one event, against the bare app's workers and database for
one INSERT request) and for p95 latency (commit to receipt, against the POST's round trip).
These ratios are figures, not targets.

    python bench/callbacks.py [--changes 10000] [--referrals 500] [--partners 20] [--rate 100]
        [--producers 2] [--dispatchers 4] [--poll-seconds 1]
        [--retry-schedule "0,0.2,0.5,1,2,3x15"] [--vacuum-every 10] [--database-url URL] [--keep]
        [--seed N] [--baseline-seconds 20] [--sabotage lose-one|reorder]

Without --database-url it creates `hub_bench_<random>` on postgresql://postgres@127.0.0.1:5432
and drops it at the end (unless --keep); a --database-url database must be empty. The exit
status is 1 when a check fails. --sabotage shows the checks failing: lose-one deletes one
event's deliveries from the outbox in its own transaction (the hub never sends it: "none lost"
fails, where a count against the outbox would pass); reorder swaps the receipt times of two
events of one referral at one partner ("in order" fails).

Layout, as a deployment has it: the producer (standing for the web processes) runs in this
process; the dispatcher runs in a worker process, as `referral-hub worker` does (the hub's
Dispatcher with --dispatchers sending threads, CALLBACK_DISPATCHER_THREADS), woken by the
producer's commits through PostgreSQL LISTEN/NOTIFY and every CALLBACK_POLL_SECONDS
(--poll-seconds); the receivers, standing for the partners' machines, run in a third process.

The retry schedule is compressed to seconds (production's is 0, 5 s, 5 min, 30 min, 2 h, 5 h,
10 h, 10 h): with minutes between tries, a delivery that meets a 503 is minutes late by design,
and no run of a few minutes would end. It has 20 tries so that a partner failing half of its
requests at random loses no delivery to "failed" (0.5^20 per delivery); with production's 8
tries, 1 in 256 would be parked for replay.

A live PostgreSQL vacuums the outbox (autovacuum); where the server has autovacuum off (as the
CI configuration of the development machines does), the bench runs VACUUM (ANALYZE) on it every
--vacuum-every seconds instead, or the claim query would walk ever more dead row versions.
"""

import argparse
import math
import multiprocessing
import os
import random
import statistics
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import harness
import requests
from sqlalchemy import text

from referral_hub import create_app
from referral_hub.auth.principal import Principal
from referral_hub.callbacks import attempts as attempts_module
from referral_hub.callbacks import dispatcher as dispatcher_module
from referral_hub.callbacks import service as callbacks_service
from referral_hub.extensions import db
from referral_hub.referrals import service as referrals
from referral_hub.referrals.models import DECLINE_REASONS, OUTCOMES
from referral_hub.referrals.schemas import ReferralCreate

TARGET_P95_S = 1.0
FAILURE_RATE = 0.5  # of the failing partners' requests, answered 503
FAILING_EVERY = 5  # one partner in five fails
DEFAULT_SCHEDULE = "0,0.2,0.5,1,2,3x15"
PRODUCTION_SCHEDULE = "0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h"
DRAIN_TIMEOUT_S = 120
CATEGORY = "detox"
PROVINCE = "17"

# Where a referral goes next, with weights: mostly the happy path, sometimes a decline or a
# withdrawal, so every transition the state machine has is exercised.
NEXT_STATUS = {
    "sent": (("received", 90), ("withdrawn", 10)),
    "received": (("accepted", 80), ("declined", 10), ("withdrawn", 10)),
    "accepted": (("in_progress", 95), ("withdrawn", 5)),
    "in_progress": (("completed", 95), ("withdrawn", 5)),
}


# --- the hub ------------------------------------------------------------------------------


def parse_schedule(spec):
    """ "0,0.2,3x15" -> [0.0, 0.2, 3.0, ... (15 times)]: seconds before each try."""
    schedule = []
    for part in spec.split(","):
        value, _, times = part.strip().partition("x")
        schedule += [float(value)] * int(times or 1)
    if not schedule:
        raise SystemExit("The retry schedule needs at least one try.")
    return schedule


def make_hub(database_url, schedule, poll_seconds, threads=1):
    """Testing settings with the bench's compressed retry schedule."""
    return create_app(
        harness.hub_config(
            database_url,
            CALLBACK_RETRY_SCHEDULE=schedule,
            CALLBACK_POLL_SECONDS=poll_seconds,
            CALLBACK_DISPATCHER_THREADS=threads,
            CALLBACK_ALLOW_HTTP=True,
            CALLBACK_ALLOW_PRIVATE_TARGETS=True,
        )
    )


def migrate(app):
    harness.migrate(app)
    with app.app_context():
        if db.session.scalar(text("SELECT count(*) FROM deliveries")):
            raise SystemExit("The database already holds deliveries: give an empty one.")


# --- partners and their receivers ---------------------------------------------------------


@dataclass
class Partner:
    index: int
    organization_id: str
    service_id: str
    principal: Principal
    failing: bool
    port: int
    subscription_id: str | None = None
    secret: str | None = None


def build_partners(app, count):
    """Organisations with one service each; the hub's systems act for them (client principals,
    built directly: token checks are not what this benchmark measures)."""
    partners = []
    with app.app_context():
        for index in range(count):
            organization, service = harness.organisation_with_service(
                "partner", index, CATEGORY, PROVINCE
            )
            db.session.flush()
            principal = Principal(
                organization_id=organization.id,
                client_id=f"bench-client-{index}",
                user_id=None,
                roles=frozenset(),
                provinces=frozenset(),
                scopes=frozenset({"referrals:read", "referrals:write", "callbacks:manage"}),
            )
            failing = index % FAILING_EVERY == FAILING_EVERY - 1
            partners.append(
                Partner(index, organization.id, service.id, principal, failing, harness.free_port())
            )
        db.session.commit()
    return partners


def subscribe(app, partners):
    """Each partner registers its receiver's URL for every event type, through the service
    rule the API uses; the secret it gets back is what its receiver verifies with."""
    with app.app_context():
        for partner in partners:
            subscription, secret = callbacks_service.create_subscription(
                partner.principal,
                f"http://127.0.0.1:{partner.port}/callbacks",
                ["referral.created", "referral.status_changed", "referral.consent_withdrawn"],
            )
            partner.subscription_id, partner.secret = subscription.id, secret
        db.session.commit()


def serve_receivers(specs, pipe):
    """Child process: one CallbackReceiver per partner until told to stop, then send back what
    each received (of each distinct webhook-id: its receipt time and the referral and version
    its body names; repeats of a webhook-id, requests)."""
    harness.partner_kit()
    from referral_hub_kit import CallbackReceiver

    receivers = [
        CallbackReceiver(
            spec["secret"], port=spec["port"], failure_rate=spec["failure_rate"], seed=spec["seed"]
        ).start()
        for spec in specs
    ]
    pipe.send("ready")
    pipe.recv()
    results = []
    for receiver in receivers:
        results.append(
            {
                "events": [
                    (
                        e["webhook_id"],
                        e["received_at"],
                        e["payload"]["data"]["referral_id"],
                        e["payload"]["data"]["version"],
                    )
                    for e in receiver.events
                ],
                "duplicates": receiver.duplicates,
                "requests": receiver.requests,
                "rejected": len(receiver.rejected),
            }
        )
        receiver.stop()
    pipe.send({"receivers": results, "cpu_seconds": time.process_time()})


def start_receivers(partners, seed):
    """The partners' endpoints, in their own process as partners are other machines."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    specs = [
        {
            "secret": p.secret,
            "port": p.port,
            "failure_rate": FAILURE_RATE if p.failing else 0.0,
            "seed": seed + p.index,
        }
        for p in partners
    ]
    process = context.Process(target=serve_receivers, args=(specs, theirs), daemon=True)
    process.start()
    if not ours.poll(60) or ours.recv() != "ready":
        raise SystemExit("The receivers did not start.")
    return process, ours


# --- referrals ----------------------------------------------------------------------------


@dataclass
class Slot:
    """One of the --referrals referrals in flight; replaced when it reaches a terminal state."""

    sender: Partner
    receiver: Partner
    referral_id: str | None = None
    status: str = "sent"
    version: int = 1


def referral_data(service_id):
    """A referral as the API would load it: the smallest valid one (no personal data to
    encrypt: encryption is not what this benchmark measures)."""
    now = datetime.now(UTC)
    body = {
        "service_id": service_id,
        "urgency": "normal",
        "needs": [CATEGORY],
        "subject": {"sex": "female", "age": 12, "province": PROVINCE},
        "consent": {
            "given_by": "guardian",
            "method": "verbal",
            "obtained_at": (now - timedelta(hours=1)).isoformat(),
            "categories": ["contact"],
            "expires_at": (now + timedelta(days=180)).isoformat(),
        },
    }
    return ReferralCreate().load(body)


def create_referral(slot):
    """Send a new referral for this slot's pair; its version-1 event is `referral.created`."""
    referral, _ = referrals.create_referral(
        slot.sender.principal, referral_data(slot.receiver.service_id)
    )
    slot.referral_id, slot.status, slot.version = referral.id, referral.status, referral.version


def make_slots(app, partners, count, rng):
    """Referrals spread over random sender/receiver pairs, created before any subscription
    exists so that they add no deliveries: every delivery belongs to the timed run."""
    slots = []
    with app.app_context():
        for _ in range(count):
            sender, receiver = rng.sample(partners, 2)
            slot = Slot(sender, receiver)
            create_referral(slot)
            slots.append(slot)
        db.session.commit()
    return slots


def next_change(slot, rng):
    """(principal, status, fields) of a change the state machine allows from the slot's state."""
    choices, weights = zip(*NEXT_STATUS[slot.status], strict=True)
    status = rng.choices(choices, weights)[0]
    party = referrals.TRANSITIONS[(slot.status, status)]
    principal = (slot.sender if party == "sender" else slot.receiver).principal
    extra = {}
    if status == "declined":
        extra["reason"] = rng.choice(DECLINE_REASONS)
    if status == "completed":
        extra["outcome"] = rng.choice(OUTCOMES)
    return principal, status, extra


# --- producing events ---------------------------------------------------------------------


@dataclass
class Production:
    """What the producers did: commit time of each event keyed by (referral id, version), the
    partners that must hear of it, and per producer thread the changes and new referrals it
    made and how far behind it fell."""

    producers: int
    sabotage: str | None = None
    commits: dict = field(default_factory=dict)
    audience: dict = field(default_factory=dict)  # (referral id, version) -> partner indexes
    dropped: list = field(default_factory=list)  # --sabotage lose-one: taken out of the outbox
    started: float = 0.0
    finished: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self):
        self.changes_by, self.creations_by = [0] * self.producers, [0] * self.producers
        self.lag_by = [0.0] * self.producers

    @property
    def events(self):
        return len(self.commits)

    @property
    def changes(self):
        return sum(self.changes_by)

    @property
    def creations(self):
        return sum(self.creations_by)

    @property
    def max_lag(self):
        return max(self.lag_by)


def drop_from_outbox(referral_id, version):
    """--sabotage lose-one: the event's deliveries leave the outbox before the commit, as if
    the hub had never enqueued them; only a count against what was produced notices."""
    db.session.flush()
    db.session.execute(
        text(
            "DELETE FROM deliveries WHERE referral_id = :referral AND event_id IN"
            " (SELECT id FROM referral_events WHERE referral_id = :referral"
            " AND version = :version)"
        ),
        {"referral": referral_id, "version": version},
    )


def produce_share(app, number, slots, changes, rate, start, rng, production):
    """One producer thread (a web worker): one event every 1/rate seconds from `start` on, a
    status change of a random referral of its own, or, when that referral has ended, a new
    referral in its place. Each event is its own transaction, as each API request is; the time
    right after the commit is when it may first be sent. Who must hear of it is what the
    contract says: a new referral its receiver, a status change both parties."""
    with app.app_context():
        for lag in harness.ticks(start, rate):
            if production.changes_by[number] >= changes:
                break
            production.lag_by[number] = max(production.lag_by[number], lag)
            slot = rng.choice(slots)
            if slot.status not in NEXT_STATUS:
                create_referral(slot)
                production.creations_by[number] += 1
                audience = {slot.receiver.index}
            else:
                principal, status, extra = next_change(slot, rng)
                referral = referrals.change_status(
                    principal, slot.referral_id, slot.version, status, **extra
                )
                slot.status, slot.version = referral.status, referral.version
                production.changes_by[number] += 1
                audience = {slot.sender.index, slot.receiver.index}
            key = (slot.referral_id, slot.version)
            if production.sabotage == "lose-one" and number == 0 and not production.dropped:
                drop_from_outbox(*key)
                production.dropped.append(key)
            db.session.commit()
            production.commits[key] = time.time()
            production.audience[key] = audience
        db.session.remove()


def produce(app, slots, changes, rate, seed, production):
    """Split the referrals and the rate between the producer threads, so that no two threads
    change the same referral (they would meet the optimistic lock, as two users would), and
    run them until each has made its share of the changes."""
    count = production.producers

    def share(number, changes, rate, start):
        rng = random.Random(seed * 1000 + number)
        produce_share(app, number, slots[number::count], changes, rate, start, rng, production)

    production.started = time.time()
    harness.in_step(share, changes, rate, count, production.started)
    production.finished = time.time()
    production.done.set()


# --- dispatching --------------------------------------------------------------------------


class Timings:
    """Wall time of each claim (the lease query), each attempt (sign and POST) and each record
    (one transaction for the answers that came in meanwhile) in the dispatcher's threads, to
    show where a dispatcher's time goes."""

    def __init__(self):
        self.claims, self.batches, self.attempts, self.records, self.recorded = [], [], [], [], []

    def install(self):
        """Wrap the functions the dispatcher looks up at call time; app code unchanged."""
        claim, attempt, record = (
            dispatcher_module.claim,
            dispatcher_module.attempt,
            dispatcher_module.record,
        )

        def timed(function, times, sizes=None, size_of=None):
            def run(*args, **kwargs):
                started = time.perf_counter()
                try:
                    found = function(*args, **kwargs)
                finally:
                    times.append(time.perf_counter() - started)
                if sizes is not None:
                    sizes.append(len(size_of(args, found)))
                return found

            return run

        dispatcher_module.claim = timed(claim, self.claims, self.batches, lambda a, f: f)
        dispatcher_module.attempt = timed(attempt, self.attempts)
        dispatcher_module.record = timed(record, self.records, self.recorded, lambda a, f: a[0])


def serve_dispatchers(database_url, schedule, poll_seconds, count, pipe):
    """Child process, as `referral-hub worker`: the hub's Dispatcher with `count` sending
    threads, woken by the producer's commits through LISTEN/NOTIFY."""
    app = make_hub(database_url, schedule, poll_seconds, count)
    timings = Timings()
    timings.install()
    dispatcher = app.extensions["hub_dispatcher"]
    dispatcher.start()
    pipe.send("ready")
    pipe.recv()
    dispatcher.stop()
    pipe.send(
        {
            "claims": timings.claims,
            "batches": timings.batches,
            "attempts": timings.attempts,
            "records": timings.records,
            "recorded": timings.recorded,
            "cpu_seconds": time.process_time(),
        }
    )


def start_worker(app, args, schedule):
    """The dispatcher in its own process (its own GIL)."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    worker_args = (
        app.config["SQLALCHEMY_DATABASE_URI"],
        schedule,
        args.poll_seconds,
        args.dispatchers,
        theirs,
    )
    process = context.Process(target=serve_dispatchers, args=worker_args, daemon=True)
    process.start()
    if not ours.poll(60) or ours.recv() != "ready":
        raise SystemExit("The dispatcher worker did not start.")
    return process, ours


def stop_process(process, pipe):
    """Tell a child process to stop and take what it sends back."""
    pipe.send("stop")
    results = pipe.recv()
    process.join(timeout=30)
    return results


def claim_plan(app):
    """EXPLAIN ANALYZE of the claim query as the dispatcher sends it (lease rows included,
    rolled back at once)."""
    with app.app_context(), db.engine.connect() as connection:
        compiled = attempts_module.claim_query().compile(dialect=db.engine.dialect)
        params = {
            **compiled.params,
            "moment": datetime.now(UTC),
            "limit": dispatcher_module.CLAIM_SIZE,
        }
        lines = connection.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}", params)
        plan = [row[0] for row in lines]
        connection.rollback()
    return plan


def autovacuum_enabled(app):
    with app.app_context():
        setting = db.session.scalar(text("SHOW autovacuum"))
        db.session.remove()
    return setting == "on"


def vacuum(app):
    """VACUUM (ANALYZE) the outbox and the subscriptions, as autovacuum would: every delivery
    updates its row two or three times and its subscription's once, and the claim query walks
    the dead versions until a vacuum removes them (and is planned on their statistics)."""
    with app.app_context(), db.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
            "VACUUM (ANALYZE) deliveries, subscriptions"
        )


def monitor(app, production, samples, plans, total_changes, vacuum_every):
    """Every second: the outbox's backlog (pending deliveries), and every ten a progress line;
    once, half-way through, the claim query's plan on a busy outbox; every `vacuum_every`
    seconds (0: never) a vacuum of the outbox, standing in for autovacuum where it is off."""
    sql = text(
        "SELECT count(*) FILTER (WHERE status = 'pending'),"
        " count(*) FILTER (WHERE status = 'pending' AND attempts > 0), count(*) FROM deliveries"
    )
    last_vacuum = time.time()
    with app.app_context():
        while not production.done.wait(1.0):
            pending, retrying, total = db.session.execute(sql).one()
            db.session.commit()
            samples.append((time.time(), pending, retrying, total))
            if not plans and production.changes >= total_changes // 2:
                plans.append(claim_plan(app))
            if vacuum_every and time.time() - last_vacuum >= vacuum_every:
                vacuum(app)
                last_vacuum = time.time()
            if len(samples) % 10 == 0:
                print(
                    f"  t={time.time() - production.started:5.0f} s  events {production.events:6d}"
                    f"  deliveries {total:6d}  pending {pending:5d} (of which retrying {retrying})",
                    flush=True,
                )
        db.session.remove()


def drain(app, timeout):
    """Wait until no delivery is pending (all delivered or parked), or the timeout."""
    deadline = time.time() + timeout
    with app.app_context():
        while True:
            pending = db.session.scalar(
                text("SELECT count(*) FROM deliveries WHERE status = 'pending'")
            )
            db.session.commit()
            if pending == 0 or time.time() > deadline:
                db.session.remove()
                return pending
            time.sleep(0.2)


# --- results ------------------------------------------------------------------------------


def outbox_rows(app):
    """Every delivery with the (referral, version) of its event, and its attempts' HTTP time."""
    sql = text(
        "SELECT d.id, d.subscription_id, d.status, d.attempts, e.referral_id, e.version,"
        " (SELECT coalesce(sum(a.duration_ms), 0) FROM delivery_attempts a"
        "   WHERE a.delivery_id = d.id)"
        " FROM deliveries d JOIN referral_events e ON e.id = d.event_id"
    )
    with app.app_context():
        rows = db.session.execute(sql).all()
        db.session.remove()
    return rows


def percentile(values, share):
    """Linear interpolation between the closest ranks (as numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(values):
    return {
        "count": len(values),
        "median": percentile(values, 0.5),
        "p95": percentile(values, 0.95),
        "p99": percentile(values, 0.99),
        "max": max(values) if values else math.nan,
    }


@dataclass
class Outcome:
    """What arrived, against what the producers made: `expected` (partner, referral, version)
    triples, each to be received once (after dedup by webhook-id) and in version order per
    referral at each partner."""

    expected: int = 0
    received: int = 0
    outbox: int = 0  # deliveries the hub enqueued
    lost: list = field(default_factory=list)
    unexpected: int = 0  # at a partner that should not hear of it, or no event of the run
    repeated: int = 0  # the same event at the same partner under another webhook-id
    duplicates: int = 0  # repeats of a received webhook-id (dropped by the receiver)
    parked: int = 0
    out_of_order: list = field(default_factory=list)  # (partner, referral, versions received)
    requests: int = 0
    rejected: int = 0
    latency: dict = field(default_factory=lambda: defaultdict(list))
    tries: dict = field(default_factory=lambda: defaultdict(int))
    first_receipt: float = math.inf
    last_receipt: float = 0.0
    http_ms: list = field(default_factory=list)


def swap_two_receipts(receivers):
    """--sabotage reorder: two events of one referral at one partner swap receipt times, as if
    the later one had arrived first."""
    for result in receivers:
        seen = {}
        for position, (_, _, referral_id, _) in enumerate(result["events"]):
            if referral_id in seen:
                first = seen[referral_id]
                a, b = result["events"][first], result["events"][position]
                result["events"][first] = (*a[:1], b[1], *a[2:])
                result["events"][position] = (*b[:1], a[1], *b[2:])
                return
            seen[referral_id] = position


def analyse(rows, partners, production, received):
    """Match what the receivers got against what the producers made: each event must have
    reached every partner that should hear of it, once after dedup, in version order per
    referral; its latency is its first receipt - its commit. The outbox rows give the tries,
    the parked deliveries and the HTTP time."""
    receivers = received["receivers"]
    outcome = Outcome()
    outcome.duplicates = sum(r["duplicates"] for r in receivers)
    outcome.requests = sum(r["requests"] for r in receivers)
    outcome.rejected = sum(r["rejected"] for r in receivers)
    attempts = {}
    for webhook_id, _subscription, status, tries, _referral, _version, http_ms in rows:
        attempts[webhook_id] = tries
        outcome.parked += status == "failed"
        outcome.tries[tries] += 1
        outcome.http_ms.append(http_ms / max(tries, 1))
    outcome.outbox = len(rows)
    expected = {
        (index, referral_id, version)
        for (referral_id, version), indexes in production.audience.items()
        for index in indexes
    }
    arrivals = defaultdict(list)  # (partner, referral, version) -> [(received_at, webhook-id)]
    for index, result in enumerate(receivers):
        for webhook_id, at, referral_id, version in result["events"]:
            arrivals[(index, referral_id, version)].append((at, webhook_id))
    outcome.expected = len(expected)
    outcome.received = sum(len(found) for found in arrivals.values())
    outcome.lost = sorted(expected - arrivals.keys())
    outcome.unexpected = sum(len(arrivals[key]) for key in arrivals.keys() - expected)
    outcome.repeated = sum(len(found) - 1 for found in arrivals.values())
    by_referral = defaultdict(list)  # (partner, referral) -> [(received_at, version)]
    for (index, referral_id, version), found in arrivals.items():
        at, webhook_id = min(found)
        by_referral[(index, referral_id)].append((at, version))
        if (index, referral_id, version) not in expected:
            continue
        outcome.first_receipt = min(outcome.first_receipt, at)
        outcome.last_receipt = max(outcome.last_receipt, at)
        latency = at - production.commits[(referral_id, version)]
        outcome.latency["all"].append(latency)
        outcome.latency["failing" if partners[index].failing else "healthy"].append(latency)
        first_try = attempts.get(webhook_id) == 1
        outcome.latency["first try" if first_try else "retried"].append(latency)
    for (index, referral_id), found in by_referral.items():
        versions = [version for _, version in sorted(found)]
        if versions != sorted(versions):
            outcome.out_of_order.append((index, referral_id, versions))
    return outcome


def retry_share(outcome):
    """Share of all latency that is waiting for retries: each retried delivery's latency beyond
    the median latency of deliveries that succeeded at the first try."""
    total = sum(outcome.latency["all"])
    base = percentile(outcome.latency["first try"], 0.5)
    excess = sum(max(0.0, value - base) for value in outcome.latency["retried"])
    return excess / total if total else math.nan


# --- the bare baseline --------------------------------------------------------------------


@dataclass
class Bare:
    """The bare baseline's POSTs: round trips (ms), and the CPU of its workers and database."""

    ms: list
    seconds: float
    cpu_seconds: float
    description: str


def run_bare(args, database_url, seconds):
    """shared/baselines' bare POST /insert (one psycopg2 INSERT of post.lua's referral-sized
    body, nothing else) on gunicorn with a sync worker per producer thread, posted at the
    producers' rate by as many client threads for `seconds`: the cheapest durable write of a
    referral on this stack, measured in the same run, to weigh an event against."""
    body, headers = harness.baseline_body(), {"Content-Type": "application/json"}
    count = max(args.producers, round(args.rate * seconds))
    times, errors = [], []
    with harness.bare_app(database_url, args.producers, 1) as server:
        url = f"{server.url}/insert"

        def post(_number, count, rate, start):
            with requests.Session() as session:
                for _, _lag in zip(range(count), harness.ticks(start, rate), strict=False):
                    started = time.perf_counter()
                    response = session.post(url, data=body, headers=headers, timeout=30)
                    times.append((time.perf_counter() - started) * 1000)
                    if response.status_code != 201:
                        errors.append(f"POST {url} -> {response.status_code}")
                        return

        with requests.Session() as session:  # warm up: connections, imports, plans
            for _ in range(20):
                session.post(url, data=body, headers=headers, timeout=30).raise_for_status()
        before, started = server.cpu(), time.time()
        harness.in_step(post, count, args.rate, args.producers, started)
        elapsed, cpu = time.time() - started, sum(server.cpu()) - sum(before)
    if errors:
        raise SystemExit(f"The bare baseline failed: {errors[0]}")
    return Bare(times, elapsed, cpu, server.description)


# --- report -------------------------------------------------------------------------------


def ms(seconds):
    return f"{seconds * 1000:,.0f}" if not math.isnan(seconds) else "-"


def engine_of(app):
    with app.app_context():
        return db.engine


def report(args, schedule, app, production, outcome, timings, samples, plans, cpu, pending, bare):
    """The figures, then PASS/FAIL per check; returns True when every check passes."""
    failing = sum(1 for i in range(args.partners) if i % FAILING_EVERY == FAILING_EVERY - 1)
    produced_for = production.finished - production.started
    rate = production.events / produced_for if produced_for else math.nan
    window = outcome.last_receipt - production.started
    drained = outcome.last_receipt - production.finished
    max_pending = max((s[1] for s in samples), default=0)
    print()
    print(
        f"Callbacks: {production.changes:,} status changes + {production.creations:,} new "
        f"referrals over {args.referrals} referrals in flight, {args.partners} partners "
        f"({failing} answering 503 to {FAILURE_RATE:.0%} of requests); {args.producers} producer "
        f"thread(s), a worker with {args.dispatchers} sending thread(s) woken by LISTEN/NOTIFY"
    )
    print(
        f"  machine: {harness.describe_machine(engine_of(app))}; retry schedule "
        f"{args.retry_schedule} "
        f"({len(schedule)} tries; production: {PRODUCTION_SCHEDULE}); "
        f"poll {args.poll_seconds} s; "
        + (
            "autovacuum on"
            if args.autovacuum
            else f"autovacuum off, the bench vacuums the outbox every {args.vacuum_every:g} s"
            if args.vacuum_every
            else "autovacuum off, no vacuum"
        )
    )
    print(
        f"Produced: {production.events:,} events in {produced_for:.1f} s = {rate:.1f}/s "
        f"(asked {args.rate}/s; producer at most {production.max_lag * 1000:.0f} ms behind)"
    )
    print(
        f"Delivered: the producers' events call for {outcome.expected:,} callbacks (a new "
        f"referral to its receiver, a status change to both parties); the outbox held "
        f"{outcome.outbox:,}; {outcome.received:,} distinct webhook-ids received; lost "
        f"{len(outcome.lost)}, parked as failed {outcome.parked}, still pending {pending}, "
        f"unexpected {outcome.unexpected}, an event again under another webhook-id "
        f"{outcome.repeated}, repeats of a received webhook-id {outcome.duplicates}, referrals "
        f"out of order at a partner {len(outcome.out_of_order)}"
    )
    print(
        f"HTTP: {outcome.requests:,} callback requests, {outcome.rejected:,} answered 503; "
        f"throughput {outcome.received / window:,.1f} deliveries/s and "
        f"{outcome.requests / window:,.1f} requests/s over {window:.1f} s; last receipt "
        f"{drained:.2f} s after the last commit; largest backlog {max_pending} pending"
    )
    print("Latency, commit to first receipt per webhook-id (ms):")
    print(f"  {'':26s}{'count':>8s}{'median':>9s}{'p95':>9s}{'p99':>9s}{'max':>9s}")
    labels = {
        "all": "all",
        "healthy": "partners without failures",
        "failing": "partners failing 50 %",
        "first try": "delivered at the first try",
        "retried": "delivered after retries",
    }
    for key, label in labels.items():
        s = summary(outcome.latency[key])
        print(
            f"  {label:26s}{s['count']:8,d}{ms(s['median']):>9s}{ms(s['p95']):>9s}"
            f"{ms(s['p99']):>9s}{ms(s['max']):>9s}"
        )
    print(f"  waiting for retries is {retry_share(outcome):.0%} of all latency")
    tries = ", ".join(f"{n}: {count:,}" for n, count in sorted(outcome.tries.items()))
    print(f"  tries per delivery -> deliveries: {tries}")
    if timings["attempts"]:
        claims, records = timings["claims"], timings["records"]
        print(
            f"Dispatcher: {len(claims):,} claims, median {ms(statistics.median(claims))} ms "
            f"(p95 {ms(percentile(claims, 0.95))}), {statistics.mean(timings['batches']):.1f} "
            f"deliveries each; {len(records):,} records, median "
            f"{ms(statistics.median(records))} ms (p95 {ms(percentile(records, 0.95))}), "
            f"{statistics.mean(timings['recorded']):.1f} answers each; one attempt median "
            f"{ms(statistics.median(timings['attempts']))} ms (p95 "
            f"{ms(percentile(timings['attempts'], 0.95))}) of which HTTP median "
            f"{statistics.median(outcome.http_ms):.0f} ms"
        )
    print(
        "CPU (share of one core over the run): "
        + ", ".join(
            f"{name} {cpu[name]:.0f} s ({cpu[name] / window:.0%})"
            for name in ("producer", "worker", "receivers", "database")
        )
        + f"; load average "
        f"{cpu['load_before']:.1f} before, {os.getloadavg()[0]:.1f} after (other work on the "
        "machine competes for its cores)"
    )
    requests_made = max(outcome.requests, 1)
    print(
        f"  per event: producer {cpu['producer'] / production.events * 1000:.1f} ms CPU, "
        f"database {cpu['database'] / production.events * 1000:.1f} ms; per callback request: "
        f"worker {cpu['worker'] / requests_made * 1000:.1f} ms, receiver "
        f"{cpu['receivers'] / requests_made * 1000:.1f} ms"
    )
    if plans:
        print("Claim query half-way through (EXPLAIN ANALYZE):")
        for line in plans[0]:
            print(f"    {line}")
    p95 = percentile(outcome.latency["all"], 0.95)
    hub_cpu_ms = (cpu["producer"] + cpu["worker"] + cpu["database"]) / production.events * 1000
    bare_cpu_ms = bare.cpu_seconds / len(bare.ms) * 1000
    bare_p95 = percentile(bare.ms, 0.95) / 1000
    print(
        f"Bare baseline in this run: shared/baselines/bare_app.py's POST /insert (one psycopg2 "
        f"INSERT of post.lua's referral-sized body) on {bare.description}, posted at "
        f"{args.rate:g}/s by {args.producers} client thread(s): {len(bare.ms):,} inserts in "
        f"{bare.seconds:.1f} s, round trip median {ms(percentile(bare.ms, 0.5) / 1000)} ms, p95 "
        f"{ms(bare_p95)} ms; CPU (its workers and database) {bare_cpu_ms:.2f} ms per insert"
    )
    print(
        f"  hub / bare: CPU per event {hub_cpu_ms / bare_cpu_ms:.1f}x ({hub_cpu_ms:.1f} ms: the "
        "producer's transaction, the worker's dispatch and the database's work for one event, "
        "receivers left out, against one bare INSERT request); p95 latency "
        f"{p95 / bare_p95:.1f}x (commit to first receipt at the partner, against one POST's "
        "round trip to its committed INSERT)"
    )
    once = not outcome.unexpected and not outcome.repeated
    checks = [
        (
            f"p95 under {TARGET_P95_S:.0f} s ({ms(p95)} ms; fixed target; {p95 / bare_p95:.1f}x"
            " the bare POST's p95 in this run, a figure, not a target)",
            p95 < TARGET_P95_S,
        ),
        (f"events produced at {args.rate:g}/s ({rate:.1f}/s)", rate >= 0.98 * args.rate),
        (
            f"none lost: {outcome.expected - len(outcome.lost):,} of the {outcome.expected:,} "
            "callbacks the producers' events call for were received",
            not outcome.lost,
        ),
        (
            "exactly once: no event at a partner that should not hear of it, none under two "
            "webhook-ids",
            once,
        ),
        (
            "in order: at every partner, each referral's events arrived in version order (first "
            "receipt of each webhook-id)",
            not outcome.out_of_order,
        ),
    ]
    print("Checks:")
    for label, passed in checks:
        print(f"  {'PASS' if passed else 'FAIL'}  {label}")
    if outcome.lost:
        print(f"  first lost (partner, referral, version): {outcome.lost[:5]}")
    if outcome.out_of_order:
        print(
            f"  first out of order (partner, referral, versions received): "
            f"{outcome.out_of_order[:5]}"
        )
    return all(passed for _, passed in checks)


# --- main ---------------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=10_000, help="status changes to make")
    parser.add_argument("--referrals", type=int, default=500, help="referrals in flight")
    parser.add_argument("--partners", type=int, default=20, help="subscribed organisations")
    parser.add_argument("--rate", type=float, default=100, help="events committed per second")
    parser.add_argument(
        "--producers", type=int, default=2, help="producer threads (web workers) sharing --rate"
    )
    parser.add_argument(
        "--dispatchers", type=int, default=4, help="sending threads (CALLBACK_DISPATCHER_THREADS)"
    )
    parser.add_argument("--poll-seconds", type=float, default=1.0, help="CALLBACK_POLL_SECONDS")
    parser.add_argument(
        "--retry-schedule",
        default=DEFAULT_SCHEDULE,
        help="seconds before each try, 'AxN' repeats A N times (CALLBACK_RETRY_SCHEDULE)",
    )
    parser.add_argument(
        "--vacuum-every",
        type=float,
        default=10,
        help="seconds between VACUUM (ANALYZE) of the outbox when the server's autovacuum is off "
        "(0: never)",
    )
    parser.add_argument("--database-url", help="an empty PostgreSQL database (kept)")
    parser.add_argument("--keep", action="store_true", help="keep the created database")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--baseline-seconds",
        type=float,
        default=20,
        help="how long the bare baseline is posted to at --rate",
    )
    parser.add_argument(
        "--sabotage",
        choices=("lose-one", "reorder"),
        help="take one event out of the outbox before its commit, or swap two receipts of one "
        "referral, to see the checks fail",
    )
    args = parser.parse_args(argv)
    if args.partners < 2 or args.changes < 1 or args.rate <= 0 or args.dispatchers < 1:
        parser.error("give at least 2 partners, 1 change, 1 dispatcher and a positive rate")
    if not 1 <= args.producers <= args.referrals:
        parser.error("give at least one producer, and at least one referral per producer")
    return args


def run(args, database_url):
    """Set up, produce and deliver, collect; returns True when the targets are met."""
    rng = random.Random(args.seed)
    schedule = parse_schedule(args.retry_schedule)
    app = make_hub(database_url, schedule, args.poll_seconds)
    migrate(app)
    print(f"Setting up {args.partners} partners and {args.referrals} referrals ...", flush=True)
    partners = build_partners(app, args.partners)
    slots = make_slots(app, partners, args.referrals, rng)
    subscribe(app, partners)
    receivers, receivers_pipe = start_receivers(partners, args.seed)
    worker, worker_pipe = start_worker(app, args, schedule)
    production, samples, plans = Production(args.producers, args.sabotage), [], []
    args.autovacuum = autovacuum_enabled(app)
    vacuum_every = 0 if args.autovacuum else args.vacuum_every
    watcher = threading.Thread(
        target=monitor,
        args=(app, production, samples, plans, args.changes, vacuum_every),
        daemon=True,
    )
    print(f"Producing {args.changes:,} status changes at {args.rate:g} events/s ...", flush=True)
    cpu_before, load_before = time.process_time(), os.getloadavg()[0]
    engine = engine_of(app)
    database_before = harness.backend_cpu(engine)
    watcher.start()
    try:
        produce(app, slots, args.changes, args.rate, args.seed, production)
        watcher.join()
        pending = drain(app, DRAIN_TIMEOUT_S)
        database_cpu = harness.backend_cpu(engine) - database_before
    finally:
        production.done.set()
        timings = stop_process(worker, worker_pipe)
        received = stop_process(receivers, receivers_pipe)
    cpu = {
        "producer": time.process_time() - cpu_before,
        "worker": timings["cpu_seconds"],
        "receivers": received["cpu_seconds"],
        "database": database_cpu,
        "load_before": load_before,
    }
    print(f"Posting to the bare baseline at {args.rate:g}/s ...", flush=True)
    bare = run_bare(args, database_url, args.baseline_seconds)
    if args.sabotage == "reorder":
        swap_two_receipts(received["receivers"])
    outcome = analyse(outbox_rows(app), partners, production, received)
    passed = report(
        args, schedule, app, production, outcome, timings, samples, plans, cpu, pending, bare
    )
    engine.dispose()
    return passed


if __name__ == "__main__":
    sys.exit(harness.main(parse_args, run))
