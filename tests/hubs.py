"""Whole hubs in their own processes, each with its own database, for federation tests.

A hub here is what production runs: the web app and its worker (scheduler, callback
dispatcher, forwarder, audit sequencer) in one process, served over real HTTP on a free port of
127.0.0.1. It is set up with the `referral-hub` command line, as a coordinator would."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
from sqlalchemy import create_engine, make_url, text

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "directory" / "seed.json"  # hub B's directory
MLOP_TAPANG = "ac827583-a972-50d8-9908-50255f61c4fd"
HOTLINE = "cf35f0d9-a9ad-56d2-b639-a142a1d1f778"  # M'Lop Tapang's ChildSafe Hotline, at B
SERVE = """
import sys
from werkzeug.serving import make_server
from referral_hub import create_app, jobs
app = create_app()
jobs.start(app)
make_server("127.0.0.1", int(sys.argv[1]), app, threaded=True).serve_forever()
"""


def private_database(base_url, tmp_path, name):
    """A new database for one hub: a file on SQLite, a database of its own on PostgreSQL."""
    if not base_url.startswith("postgresql"):
        return f"sqlite:///{tmp_path}/{name}.sqlite", None
    database = f"hub_{name}_{os.urandom(5).hex()}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{database}"'))
    admin.dispose()
    url = make_url(base_url).set(database=database).render_as_string(hide_password=False)

    def drop():
        admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


class Hub:
    """One hub: its settings, its command line, its process."""

    def __init__(self, name, database_url, port, tmp_path, **settings):
        self.name, self.port = name, port
        self.url = f"http://127.0.0.1:{port}"
        self.log = tmp_path / f"{name}.log"
        self.env = {
            **os.environ,
            "HUB_ENV": "testing",
            "DATABASE_URL": database_url,
            "HUB_INSTANCE_PATH": str(tmp_path / f"{name}-instance"),
            "HUB_ISSUER": self.url,
            "SECRET_KEY": f"federation-test-secret-{name}-0123456789abcdef",
            "PASSWORD_HASH_TIME_COST": "1",
            "PASSWORD_HASH_MEMORY_KIB": "1024",
            "CALLBACK_POLL_SECONDS": "0.2",
            # Tries a second apart for half a minute: a peer restarting on a loaded machine can
            # take several seconds, and a forward given up would never arrive.
            "CALLBACK_RETRY_SCHEDULE": ",".join(["0"] + ["1"] * 30),
            # A killed hub's leases lapse in seconds, not a minute.
            "CALLBACK_LEASE_SECONDS": "6",
            "CALLBACK_TOTAL_TIMEOUT": "3",
            **{key: str(value) for key, value in settings.items()},
        }
        self.process = None
        self.cli("db", "upgrade")

    def cli(self, *args, stdin=None, check=True):
        """A `referral-hub` command against this hub's database; its JSON output."""
        done = subprocess.run(
            [sys.executable, "-m", "referral_hub", *args],
            cwd=ROOT,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{self.name}: {' '.join(args)}: {done.stderr}")
        if not check:
            return done
        output = done.stdout.strip()
        return json.loads(output) if output.startswith(("{", "[")) else output

    def python(self, code):
        """Run code in an app context of this hub, as its operator could; its printed JSON."""
        program = (
            "import json\nfrom referral_hub import create_app\n"
            "from referral_hub.extensions import db\n"
            "app = create_app()\nwith app.app_context():\n"
            + "".join(f"    {line}\n" for line in code.strip().splitlines())
        )
        done = subprocess.run(
            [sys.executable, "-c", program],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    def start(self):
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", SERVE, str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).ok:
                    return self
            except requests.RequestException:
                time.sleep(0.1)
        self.stop(kill=True)
        raise AssertionError(f"{self.name} did not start: {self.log.read_text()[-3000:]}")

    def stop(self, kill=False):
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            self.process.wait(30)
            self.process = None

    def token(self, client, scope):
        response = requests.post(
            f"{self.url}/oauth/token",
            data={"grant_type": "client_credentials", "scope": scope},
            auth=(client["client_id"], client["client_secret"]),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def api(self, client, scope="referrals:read referrals:write directory:read"):
        """A requests session at this hub, with a real token of `client`."""
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {self.token(client, scope)}"
        http.base = self.url
        return http


def wait_for(condition, seconds=20, every=0.1):
    """The condition's first true value, or a failed assertion after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {condition.__doc__ or condition}")
        time.sleep(every)
