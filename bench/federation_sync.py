"""Directory sync benchmark: how long hub A takes to pull a peer hub B's directory.

Builds a directory of 10,000 services (bench/directory_search.py's synthetic directory) on a
throwaway PostgreSQL database for B, serves B with gunicorn as in production, peers A with it
(B invites A, A adds B: the issuer and token checks and the callback subscription run for
real), then times, in A's process, through B's HSDS API over HTTP:
- the first sync (a full listing);
- an incremental sync after 25 services changed at B (one of them retired);
- a sync with nothing new.
Each sync's requests to B are counted, and A's mirror is checked against what B holds: every
active service there, with its name, and the retired one gone from A's search. In the same run
the bare baseline (shared/baselines: a bare Flask GET under the same gunicorn settings) answers
the same number of requests as the full sync made, to give the sync's cost per page as a ratio
to the machine's floor. Target: a full sync of 10,000 services in under 60 s; a sync with
nothing new costs one request per page (one page).

    python bench/federation_sync.py [--services 10000] [--organizations 1000] [--keep]
"""

import argparse
import random
import sys
import time
from datetime import UTC, datetime

import harness
from directory_search import build, engine_of, generate, hub_settings, serve_hub
from sqlalchemy import text

from referral_hub import create_app
from referral_hub.directory import search
from referral_hub.directory.models import Service
from referral_hub.extensions import db
from referral_hub.federation import peering, remote, sync

TARGET_S = 60
CHANGED = 25
WORKERS, THREADS = 2, 2


class CountedRequests:
    """Counts the requests A sends to its peer (the sync's own HTTP calls)."""

    def __init__(self):
        self.count, self._send = 0, remote._send

    def __enter__(self):
        def counted(*args, **kwargs):
            self.count += 1
            return self._send(*args, **kwargs)

        remote._send = counted
        return self

    def __exit__(self, *_exc):
        remote._send = self._send


def _timed_sync(app, peer_id, label):
    with app.app_context(), CountedRequests() as counted:
        started = time.perf_counter()
        outcome = sync.sync(peer_id)
        seconds = time.perf_counter() - started
    print(f"  {label}: {seconds:.1f} s, {counted.count} requests, {outcome}")
    return seconds, counted.count, outcome


def _change_at_b(b_engine, count):
    """Rename `count` active services at B and retire the first: what a week of curation does."""
    moment = datetime.now(UTC)
    with b_engine.begin() as connection:
        ids = (
            connection.execute(
                text(
                    "SELECT s.id FROM services s JOIN organizations o ON o.id = s.organization_id"
                    " WHERE s.status = 'active' AND o.status = 'active' ORDER BY s.id LIMIT :n"
                ),
                {"n": count},
            )
            .scalars()
            .all()
        )
        for service_id in ids:
            connection.execute(
                text("UPDATE services SET name = name || ' (renamed)', updated_at = :at "
                     "WHERE id = :id"),
                {"at": moment, "id": service_id},
            )  # fmt: skip
        connection.execute(
            text("UPDATE services SET status = 'inactive' WHERE id = :id"), {"id": ids[0]}
        )
    return ids


def _check_mirror(a_app, b_engine, peer_id, retired):
    """A holds every active service of B under B's name, and the retired one is not found."""
    with b_engine.connect() as connection:
        published = dict(
            connection.execute(
                text(
                    "SELECT s.id, s.name FROM services s JOIN organizations o"
                    " ON o.id = s.organization_id WHERE s.status = 'active' AND o.status = 'active'"
                )
            ).all()
        )
    with a_app.app_context():
        mirrored = dict(
            db.session.execute(
                db.select(Service.id, Service.name).where(
                    Service.peer_id == peer_id, Service.status == "active"
                )
            ).all()
        )
        hits, _ = search.search_services(
            {"q": "renamed", "hub": peer_id}, {"limit": 100, "cursor": None}
        )
    problems = []
    if mirrored != published:
        missing, extra = set(published) - set(mirrored), set(mirrored) - set(published)
        changed = {k for k in set(published) & set(mirrored) if published[k] != mirrored[k]}
        problems.append(f"mirror differs: {len(missing)} missing, {len(extra)} extra, "
                        f"{len(changed)} with another name")  # fmt: skip
    if retired in {hit["service"]["id"] for hit in hits}:
        problems.append("the retired service is still found at A")
    if len(hits) != CHANGED - 1:
        problems.append(f"{len(hits)} renamed services found at A, not {CHANGED - 1}")
    return len(published), problems


def _peer(a_app, b_app, b_url):
    with b_app.app_context():
        invitation = peering.invite("bench", "Hub A's network")
        db.session.commit()
    with a_app.app_context():
        peer = peering.add(
            "bench", "Hub B's network", b_url, invitation["client_id"], invitation["client_secret"]
        )
        db.session.commit()
        return peer.id


def run(args, b_database):
    a_port, b_port = harness.free_port(), harness.free_port()
    b_app = create_app(hub_settings(b_database, b_port))
    b_engine = engine_of(b_app)
    print(f"machine: {harness.describe_machine(b_engine)}")
    harness.migrate(b_app)
    print(f"building B's directory: {args.organizations} organisations, {args.services} services")
    build(b_engine, generate(random.Random(args.seed), args.organizations, args.services))
    with b_engine.begin() as connection:  # built yesterday: today's changes come after it
        for table in ("organizations", "services"):
            connection.execute(text(f"UPDATE {table} SET updated_at = now() - interval '1 day'"))
    with (
        harness.throwaway_database(keep=args.keep) as a_database,
        serve_hub(b_app, b_port) as b_server,
    ):
        a_app = create_app(hub_settings(a_database, a_port))
        harness.migrate(a_app)
        peer_id = _peer(a_app, b_app, b_server.url)
        print(f"B: {b_server.description}; A syncs in this process")
        full = _timed_sync(a_app, peer_id, "full sync")
        retired = _change_at_b(b_engine, CHANGED)[0]
        incremental = _timed_sync(a_app, peer_id, f"after {CHANGED} changes")
        nothing = _timed_sync(a_app, peer_id, "nothing new")
        published, problems = _check_mirror(a_app, b_engine, peer_id, retired)
    print("measuring the bare baseline ...", flush=True)
    with harness.bare_app(b_database, WORKERS, THREADS) as bare_server:
        bare = harness.closed_loop(bare_server, "/hello", [{}] * full[1], 1)
    bare_s = bare.seconds
    pages = full[1]  # the token was had when A added B, and is still good
    print(
        f"\nfull sync: {published} services in {full[0]:.1f} s "
        f"({published / full[0]:.0f} services/s, {full[0] / max(pages, 1) * 1000:.0f} ms a page "
        f"of {sync.PAGE_SIZE}); the bare GET answered as many requests in {bare_s:.2f} s: the "
        f"sync costs {full[0] / bare_s:.0f} x the machine's floor for its requests"
    )
    print(f"incremental: {incremental[0]:.2f} s, {incremental[1]} requests")
    print(f"nothing new: {nothing[0]:.2f} s, {nothing[1]} requests")
    checks = {
        f"full sync under {TARGET_S} s": full[0] < TARGET_S,
        "full sync brought every service": full[2]["created"] + full[2]["removed"]
        == args.services,
        f"incremental brought {CHANGED} changes": (incremental[2]["updated"], incremental[2][
            "removed"]) == (CHANGED - 1, 1),
        "nothing new costs one page": nothing[2]["ok"] and nothing[1] == 1,
        "A's mirror is B's directory": not problems,
    }  # fmt: skip
    for problem in problems:
        print(f"  problem: {problem}")
    for name, passed in checks.items():
        print(f"{'PASS' if passed else 'FAIL'}: {name}")
    b_engine.dispose()
    return all(checks.values())


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="an existing, empty PostgreSQL database for B")
    parser.add_argument("--services", type=int, default=10000)
    parser.add_argument("--organizations", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20261206)
    parser.add_argument("--keep", action="store_true", help="keep the throwaway databases")
    args = parser.parse_args(argv)
    if args.services < CHANGED:
        parser.error(f"give at least {CHANGED} services")
    return args


if __name__ == "__main__":
    sys.exit(harness.main(parse_args, run))
