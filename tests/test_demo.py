"""`referral-hub demo` as a partner's developer meets it in their first hour: the README's tour
runs against it as written, twice; its console is quiet and plain; it refuses, saying why, a
port in use and a database another demo uses; `--reset` starts afresh. Real processes, real
HTTP, a temporary instance folder and SQLite file."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import requests

from referral_hub import demo_checks
from referral_hub.federation import demo as federation_demo

from .conftest import _free_port
from .hubs import ROOT, wait_for

TOUR_BLOCK = re.compile(r"^<!-- tour -->\n```sh\n(.*?)^```$", re.MULTILINE | re.DOTALL)
# What each tour block of the README prints, as it says (regular expressions, in order).
TOUR_PRINTS = [
    [r'"token_type":\s*"Bearer"', r'"access_token":\s*"eyJ', r'"expires_in":\s*600'],
    [r'"name":\s*"3PC Network Secretariat"', r'"name":\s*"M\'Lop Tapang"'],
    [
        r"HTTP/1.1 401 UNAUTHORIZED",
        r"Content-Type: application/problem\+json",
        r'WWW-Authenticate: Bearer realm="referral-hub", error="invalid_request"',
    ],
    [r'"sub":\s*"demo-partner".*"active":\s*true\}\s*\{\}\s*\{"active":\s*false\}'],
    [r'"name":\s*"Kaliyan Mith"', r'"name":\s*"Alcohol support groups"'],
    [
        r'"status":\s*"sent".*"version":\s*1',
        r'"redacted":\s*\["case_history"\]',
        r'"status":\s*"completed".*"outcome":\s*"service_provided"',
        r'"to_status":\s*"completed"',
    ],
]
PROBLEM = re.compile(r'"status":\s*4\d\d')


def _environment(instance):
    """A developer's shell with no hub settings, the demo's data kept in `instance`."""
    return {
        **{
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "SECRET_KEY", "HUB_ENV", "HUB_ISSUER")
        },
        "HUB_INSTANCE_PATH": str(instance),
        "PYTHONPATH": str(ROOT),
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "1024",
    }


def _demo(instance, *args, timeout=120):
    """`referral-hub demo ARGS` run to its end."""
    return subprocess.run(
        [sys.executable, "-m", "referral_hub", "demo", *args],
        cwd=instance.parent,
        env=_environment(instance),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A demo serving on a free port of 127.0.0.1: its port, printed JSON, process and files."""
    instance = tmp_path_factory.mktemp("demo") / "instance"
    port = _free_port()
    console = instance.parent / "console.log"
    with open(console, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "referral_hub", "demo", "--port", str(port)],
            cwd=instance.parent,
            env=_environment(instance),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line == "}\n":
            break
    else:
        process.wait(30)
        pytest.fail(f"the demo stopped: {console.read_text()[-3000:]}")
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(f"{url}/healthz"), seconds=60)
    started = time.monotonic()
    yield {
        "port": port,
        "url": url,
        "printed": json.loads("".join(lines)),
        "instance": instance,
        "console": console,
        "pid": process.pid,
        "started": started,
    }
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert not (instance / "referral_hub.sqlite.demo-lock").exists()  # let go on the way out


def _answers(url):
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False


def tour_blocks():
    return TOUR_BLOCK.findall((ROOT / "README.md").read_text())


def _run_tour(blocks, port, folder):
    """Every block in one bash shell, as a reader pastes them one after the other; any failing
    command stops it. Returns each block's output, and the end of what went wrong, if anything."""
    script = ["set -euo pipefail"]
    for number, block in enumerate(blocks):
        script.append(f"printf '\\n@@ block {number}\\n'")  # outputs may end mid-line
        script.append(block.replace("127.0.0.1:5000", f"127.0.0.1:{port}"))
    script.append("printf '\\n@@ done\\n'")
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=folder,
        env={"PATH": os.environ["PATH"], "HOME": str(folder), "LANG": "C.UTF-8"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    parts = re.split(r"\n@@ (?:block \d+|done)\n", done.stdout)[1:]
    return done.returncode, parts, done.stderr[-2000:]


def test_the_readme_tour_runs_as_written_twice(demo, tmp_path):
    blocks = tour_blocks()
    assert len(blocks) == len(TOUR_PRINTS), "say what each tour block prints in TOUR_PRINTS"
    for run in (1, 2):
        returncode, outputs, errors = _run_tour(blocks, demo["port"], tmp_path)
        ran = len(outputs) - 1  # the last part follows "done", or is the block that failed
        assert returncode == 0 and ran == len(blocks), (
            f"run {run}: block {ran} of the tour failed ({returncode}):\n"
            f"{blocks[min(ran, len(blocks) - 1)]}\nprinted: {outputs[-1][-2000:]}\n{errors}"
        )
        for number, (output, expected) in enumerate(zip(outputs, TOUR_PRINTS, strict=False)):
            for pattern in expected:
                assert re.search(pattern, output, re.DOTALL), (
                    f"run {run}, block {number}: {pattern} not in {output[-2000:]}"
                )
            if number != 2:  # the one that shows a 401 on purpose
                assert not PROBLEM.search(output), f"run {run}, block {number}: {output[-2000:]}"


def test_the_demo_console_is_quiet_and_plain(demo):
    time.sleep(max(0, demo["started"] + 6 - time.monotonic()))  # past the scheduler's 5 s beat
    console = demo["console"].read_text()
    assert f" * Running on {demo['url']}\n" in console
    assert "\x1b" not in console and "\\u001b" not in console
    assert "apscheduler" not in console and "Running job" not in console
    assert '"level": "WARNING"' not in console  # e.g. the demo data's audit entries
    assert demo["printed"]["database"] == f"sqlite:///{demo['instance'] / 'referral_hub.sqlite'}"
    assert "--reset" in demo["printed"]["reset"]


def test_the_database_url_is_printed_without_its_password():
    shown = demo_checks.shown_url("postgresql+psycopg2://hub:s3cret@db.example.org:5432/hub")
    assert shown == "postgresql+psycopg2://hub:***@db.example.org:5432/hub"
    assert demo_checks.shown_url("sqlite:////srv/hub.sqlite") == "sqlite:////srv/hub.sqlite"


def test_a_second_demo_on_the_same_database_is_refused(demo):
    second = _demo(demo["instance"], "--port", str(_free_port()))
    assert second.returncode == 1 and second.stdout == ""
    assert f"Another demo (process {demo['pid']}) is using" in second.stderr
    assert "Traceback" not in second.stderr
    assert _answers(f"{demo['url']}/healthz")  # the first goes on serving


def test_a_port_in_use_is_refused_before_anything_is_loaded(demo, tmp_path):
    refused = _demo(tmp_path / "instance", "--port", str(demo["port"]))
    assert refused.returncode == 1 and refused.stdout == ""
    assert f"Port {demo['port']} on 127.0.0.1 is in use" in refused.stderr
    assert "--port" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "instance").exists()


def test_a_lock_left_by_a_stopped_demo_blocks_nothing_and_reset_starts_afresh(tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    lock = instance / "referral_hub.sqlite.demo-lock"
    lock.write_text("999999999\n")  # a demo killed with SIGKILL leaves its file, not its lock
    runs = [_demo(instance, "--no-serve", *args) for args in ([], ["--reset"])]
    assert [run.returncode for run in runs] == [0, 0], runs[-1].stderr
    assert [json.loads(run.stdout)["demo_data"] for run in runs] == ["loaded", "loaded"]
    assert not lock.exists()


def test_reset_refuses_a_database_it_does_not_own(tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    environment = {"DATABASE_URL": "postgresql+psycopg2://hub:s3cret@127.0.0.1:1/hub"}
    refused = subprocess.run(
        [sys.executable, "-m", "referral_hub", "demo", "--no-serve", "--reset"],
        cwd=tmp_path,
        env={**_environment(instance), **environment},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "empty that one yourself" in refused.stderr
    assert "s3cret" not in refused.stderr


def test_the_federation_reset_deletes_both_networks_databases_unless_in_use(tmp_path, monkeypatch):
    monkeypatch.setenv("HUB_INSTANCE_PATH", str(tmp_path))
    files = [tmp_path / f"{network.slug}.sqlite" for network in federation_demo.NETWORKS]
    for file in files:
        file.write_text("old demo data")
    with demo_checks.DatabaseLock(files[1]), pytest.raises(demo_checks.DemoRefused):
        federation_demo.reset("127.0.0.1", (5000, 5001))
    assert all(file.exists() for file in files)  # neither, when one is in use
    federation_demo.reset("127.0.0.1", (5000, 5001))
    assert not any(file.exists() for file in files)
