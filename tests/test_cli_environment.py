"""The command line in an environment that is not ready: one line that says what to do, a
non-zero exit, never a traceback; and `--help` needs nothing and writes nothing."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def hub_command(folder, *args, python_path=(), **environment):
    """`python -m referral_hub ARGS` as a deployer runs it: this checkout, a clean environment,
    `folder` as the working directory and the instance folder inside it."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(folder),
        "HUB_INSTANCE_PATH": str(folder / "instance"),
        "PYTHONPATH": os.pathsep.join([*map(str, python_path), str(PROJECT)]),
        **environment,
    }
    return subprocess.run(
        [sys.executable, "-m", "referral_hub", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "args, environment",
    [
        (["--help"], {}),
        (["--help"], {"HUB_ENV": "development"}),
        (["db", "upgrade", "--help"], {}),
        (["demo", "--help"], {"HUB_ENV": "development"}),
    ],
)
def test_help_needs_no_environment_and_writes_nothing(tmp_path, args, environment):
    done = hub_command(tmp_path, *args, **environment)
    assert done.returncode == 0 and done.stderr == ""
    assert "Usage: referral-hub" in done.stdout
    assert list(tmp_path.iterdir()) == []


def test_the_top_level_help_says_what_the_hub_is_and_how_to_try_it(tmp_path):
    help_text = hub_command(tmp_path, "--help").stdout
    assert "referral hub for NGO networks" in help_text
    assert "referral-hub demo" in help_text
    assert "db" in help_text.split("Commands:")[1]  # Flask-Migrate's, without loading the app


def unready(tmp_path):
    """Each environment that is not ready, and what its one line must say."""
    port = closed_port()
    broken_driver = tmp_path / "broken" / "psycopg2"
    broken_driver.mkdir(parents=True)
    (broken_driver / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'psycopg2'\", name='psycopg2')\n"
    )
    development = {"HUB_ENV": "development"}
    return {
        "no SECRET_KEY in production": ({}, (), "SECRET_KEY must be set"),
        "a database that does not answer": (
            {**development, "DATABASE_URL": f"postgresql+psycopg2://postgres@127.0.0.1:{port}/hub"},
            (),
            "The database does not answer",
        ),
        "postgres:// is PostgreSQL through psycopg2": (
            {**development, "DATABASE_URL": f"postgres://postgres@127.0.0.1:{port}/hub"},
            (),
            "The database does not answer",
        ),
        "an SQLite file that cannot be opened": (
            {**development, "DATABASE_URL": f"sqlite:///{tmp_path}/no-such-folder/hub.sqlite"},
            (),
            "The database does not answer",
        ),
        "a malformed DATABASE_URL": (
            {**development, "DATABASE_URL": "hub database on db1"},
            (),
            "DATABASE_URL is not a database URL",
        ),
        "a database the hub does not run on": (
            {**development, "DATABASE_URL": "mysql://hub@127.0.0.1/hub"},
            (),
            "DATABASE_URL must name PostgreSQL (psycopg2) or SQLite",
        ),
        "a missing driver": (
            {**development, "DATABASE_URL": "postgresql://postgres@127.0.0.1/hub"},
            (broken_driver.parent,),
            "pip install 'referral-hub[postgres]'",
        ),
        "a database without the hub's tables": (
            {**development, "DATABASE_URL": f"sqlite:///{tmp_path}/empty.sqlite"},
            (),
            "run `referral-hub db upgrade`",
        ),
    }


CREATE_ORG = ["create-org", "--name", "Mith Samlanh"]
CASES = [
    ("no SECRET_KEY in production", CREATE_ORG),
    ("no SECRET_KEY in production", ["db", "upgrade"]),
    ("a database that does not answer", CREATE_ORG),
    ("a database that does not answer", ["db", "upgrade"]),
    ("postgres:// is PostgreSQL through psycopg2", ["db", "upgrade"]),
    ("an SQLite file that cannot be opened", CREATE_ORG),
    ("a malformed DATABASE_URL", CREATE_ORG),
    ("a database the hub does not run on", ["keys", "rotate"]),
    ("a missing driver", CREATE_ORG),
    ("a database without the hub's tables", CREATE_ORG),
]


@pytest.mark.parametrize("case, command", CASES, ids=[f"{c[0]}: {c[1][0]}" for c in CASES])
def test_an_unready_environment_gets_one_line_and_a_non_zero_exit(tmp_path, case, command):
    environment, python_path, says = unready(tmp_path)[case]
    done = hub_command(tmp_path, *command, python_path=python_path, **environment)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert says in done.stderr
