"""`referral-hub demo --federation`: two demo hubs, the Phnom Penh and the Siem Reap networks,
peered both ways on one machine.

Each hub runs in a process of its own (`referral-hub demo --network ...`), as production runs
a hub: its web app, scheduler, callback dispatcher and forwarder. The scheduler is one per
process with job ids named after their functions, so two hubs in one process would replace each
other's jobs; separate processes need no change to the jobs and keep each hub's state (keys,
caches, sessions) its own. This process peers them once both answer, then waits."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
from flask import Flask

from .. import create_app
from ..demo import DEMO_PASSWORD, NETWORKS, token_command
from ..demo_checks import DatabaseLock, delete_database, sqlite_path
from ..errors import NotFound
from ..extensions import db
from . import peering, sync

ACTOR = "demo"
START_SECONDS = 180  # a first start migrates, imports the seed and hashes the demo passwords
PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent


class DemoFailed(Exception):
    """The two hubs could not be brought up peered."""


def network(slug):
    return next(n for n in NETWORKS if n.slug == slug)


def settings(network, host, port):
    """One network's hub: its own SQLite file, address, name and session cookie (browsers
    share cookies between ports of one host)."""
    instance = os.environ.get("HUB_INSTANCE_PATH") or Flask("referral_hub").instance_path
    issuer = f"http://{host}:{port}"
    return {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{Path(instance) / network.slug}.sqlite",
        "HUB_ISSUER": issuer,
        "HUB_AUDIENCE": f"{issuer}/api",
        "HUB_NAME": network.name,
        "SESSION_COOKIE_NAME": f"hub_session_{network.slug.replace('-', '_')}",
    }


def _peer(name):
    try:
        return peering.find(name)
    except NotFound:
        return None


def _connect(inviting, adding):
    """Let the `adding` hub sync from and forward to the `inviting` one; False if it could
    already. Each direction is an invitation on one hub and its credentials added on the other."""
    with adding.app.app_context():
        peer = _peer(inviting.network.name)
        if peer is not None and peer.added and peer.status == "active":
            return False
    with inviting.app.app_context():
        peer = _peer(adding.network.name)
        if peer is not None and peer.invited:
            raise DemoFailed(
                f"{inviting.network.name} invited {adding.network.name} in an earlier run that "
                "stopped before the peering was complete, and the invitation's secret is gone: "
                "start afresh with `referral-hub demo --federation --reset`."
            )
        invitation = peering.invite(ACTOR, adding.network.name)
        db.session.commit()
    with adding.app.app_context():
        peering.add(
            ACTOR,
            inviting.network.name,
            inviting.url,
            invitation["client_id"],
            invitation["client_secret"],
        )
        db.session.commit()
    return True


def _sync(hub, other):
    """Pull the other network's directory now, so that /find shows it at once."""
    with hub.app.app_context():
        outcome = sync.sync(peering.find(other.network.name).id)
    if not outcome["ok"]:
        raise DemoFailed(f"{hub.network.name} could not sync {other.network.name}: {outcome}")


class DemoHub:
    """One network's hub as this process sees it: its app (for peering) and its process."""

    def __init__(self, network, host, port):
        self.network, self.host, self.port = network, host, port
        self.url = f"http://{host}:{port}"
        self.app = create_app(settings(network, host, port))
        self.database = self.app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
        self.process = None

    def start(self):
        """The hub's own process, running this same code whatever the working directory."""
        path = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
        command = [sys.executable, "-m", "referral_hub", "demo", "--network", self.network.slug]
        self.process = subprocess.Popen(  # noqa: S603 (this interpreter, fixed arguments)
            [*command, "--host", self.host, "--port", str(self.port)],
            env={**os.environ, "PYTHONPATH": path},
            stdout=subprocess.DEVNULL,
        )

    def wait_until_serving(self):
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if not self.running:
                raise DemoFailed(f"The hub at {self.url} stopped ({self.process.returncode}).")
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise DemoFailed(f"The hub at {self.url} did not answer within {START_SECONDS} s.")

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    def summary(self):
        emails = [user[0] for user in self.network.users]
        (client_id, secret, organization), *_ = self.network.clients
        api_client = {"client_id": client_id, "secret": secret, "organization": organization}
        return {
            "name": self.network.name,
            "url": self.url,
            "database": self.database,
            "sign_in": {"url": f"{self.url}/login", "emails": emails, "password": DEMO_PASSWORD},
            "api_client": api_client,
            "get_a_token": token_command(self.url, self.network.clients[0]),
        }


def _walk(phnom_penh, siem_reap):
    """How to refer across, with the demo's own people."""
    sender = next(u[0] for u in phnom_penh.network.users if u[2] == ["caseworker"])
    receiver = next(u[0] for u in siem_reap.network.users if u[2] == ["caseworker"])
    return (
        f"Sign in at {phnom_penh.url}/login as {sender}, find a service of the "
        f"{siem_reap.network.name} (e.g. Kaliyan Mith's, {phnom_penh.url}/find?hub=all) and "
        f"send a referral; sign in at {siem_reap.url}/login as {receiver} to receive and "
        f"accept it; its status shows at {phnom_penh.url} within seconds."
    )


def reset(host, ports):
    """Delete both networks' SQLite files, unless a demo is using them: the next start loads
    fresh demo data and peers the hubs again."""
    databases = [
        sqlite_path(settings(each, host, port)["SQLALCHEMY_DATABASE_URI"])
        for each, port in zip(NETWORKS, ports, strict=True)
    ]
    with contextlib.ExitStack() as locks:
        for database in databases:  # both, or neither
            locks.enter_context(DatabaseLock(database))
        for database in databases:
            delete_database(database)


def run(host, ports, emit, fresh=False):
    """Start both hubs (`fresh`: from new databases), peer them unless they are already, print
    how to use them, and serve until this process is stopped (SIGTERM or Ctrl-C stops both)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if fresh:
        reset(host, ports)
    hubs = [DemoHub(n, host, port) for n, port in zip(NETWORKS, ports, strict=True)]
    try:
        for hub in hubs:  # after create_app: the development secret is written once, here
            hub.start()
        for hub in hubs:
            hub.wait_until_serving()
        first, second = hubs
        peered = [_connect(first, second), _connect(second, first)]
        _sync(first, second)
        _sync(second, first)
        emit(
            {
                "hubs": [hub.summary() for hub in hubs],
                "peering": "made now" if any(peered) else "already in place",
                "refer_across": _walk(first, second),
                "stop": "Ctrl-C or SIGTERM stops both hubs",
            }
        )
        while all(hub.running for hub in hubs):
            time.sleep(0.5)
        stopped = next(hub for hub in hubs if not hub.running)
        raise DemoFailed(f"The hub at {stopped.url} stopped ({stopped.process.returncode}).")
    finally:
        for hub in hubs:
            if hub.running:
                hub.process.terminate()
        for hub in hubs:
            if hub.process is not None:
                hub.process.wait(30)
