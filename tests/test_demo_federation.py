"""`referral-hub demo --federation` brings up two peered hubs with one command, and again after a
stop without a second peering or a duplicate: real processes, real HTTP, real tokens."""

import json
import os
import signal
import subprocess
import sys

import pytest
import requests

from referral_hub.demo import NETWORKS, NORTH_WEST

from .conftest import _free_port
from .hubs import ROOT, wait_for
from .referral_fixtures import referral_body


def _start(instance, ports):
    """The demo command, and the JSON it prints once both hubs are peered."""
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY")},
        "HUB_INSTANCE_PATH": str(instance),
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "1024",
    }
    command = [sys.executable, "-m", "referral_hub", "demo", "--federation"]
    with open(instance / "demo.log", "a") as log:
        process = subprocess.Popen(
            [*command, "--port", str(ports[0]), "--peer-port", str(ports[1])],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line == "}\n":
            return process, json.loads("".join(lines))
    process.wait(30)
    pytest.fail(f"the demo stopped: {(instance / 'demo.log').read_text()[-3000:]}")


def _stop(process):
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0


def _api(hub, scope="directory:read referrals:read referrals:write"):
    client = hub["api_client"]
    token = requests.post(
        f"{hub['url']}/oauth/token",
        data={"grant_type": "client_credentials", "scope": scope},
        auth=(client["client_id"], client["secret"]),
        timeout=10,
    )
    assert token.status_code == 200, token.text
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    return http


def _directory(hub):
    """Every service this hub's /find shows, its own and its peer's: id -> (name, hub name)."""
    found = _api(hub).get(f"{hub['url']}/api/v1/services", params={"hub": "all", "limit": 100})
    assert found.status_code == 200, found.text
    items = found.json()["items"]
    assert found.json()["next_cursor"] is None and len({i["id"] for i in items}) == len(items)
    return {item["id"]: (item["organization"]["name"], item["hub"]["name"]) for item in items}


def _peers(hub, instance):
    """The hub's peers, as its coordinator lists them."""
    env = {
        **os.environ,
        "HUB_ENV": "development",
        "HUB_INSTANCE_PATH": str(instance),
        "DATABASE_URL": f"sqlite:///{hub['database']}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "referral_hub", "peers", "list"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [(p["name"], p["status"], p["invited"], p["added"]) for p in json.loads(done.stdout)]


def _received(hub, service_id):
    """The referral for this service that the hub's demo organisation received, if any."""
    listed = _api(hub).get(f"{hub['url']}/api/v1/referrals", params={"role": "received"})
    assert listed.status_code == 200, listed.text
    return next((r for r in listed.json()["items"] if r["service_id"] == service_id), None)


def test_the_seed_is_shared_out_whole_and_each_network_has_its_roles():
    seed = json.loads((ROOT / "directory" / "seed.json").read_text())["organizations"]
    assert NORTH_WEST.issubset(organization["name"] for organization in seed)  # none misspelt
    for organization in seed:
        assert sum(network.keeps(organization) for network in NETWORKS) == 1
    for network in NETWORKS:
        roles = {role for _, _, user_roles, _ in network.users for role in user_roles}
        assert {"caseworker", "org_admin", "coordinator"} <= roles


def test_two_demo_hubs_refer_across_and_come_back_peered(tmp_path):
    ports = (_free_port(), _free_port())
    process, printed = _start(tmp_path, ports)
    try:
        phnom_penh, siem_reap = printed["hubs"]
        assert printed["peering"] == "made now"
        assert [hub["url"] for hub in printed["hubs"]] == [f"http://127.0.0.1:{p}" for p in ports]
        assert phnom_penh["api_client"]["client_id"] != siem_reap["api_client"]["client_id"]
        directories = [_directory(phnom_penh), _directory(siem_reap)]
        assert directories[0] == directories[1]  # every service in exactly one hub, seen by both
        networks = {hub for _, hub in directories[0].values()}
        assert networks == {"Phnom Penh network", "Siem Reap network"}
        kaliyan_mith = next(
            service_id
            for service_id, (organization, hub) in directories[0].items()
            if organization == "Kaliyan Mith" and hub == "Siem Reap network"
        )

        sent = _api(phnom_penh).post(
            f"{phnom_penh['url']}/api/v1/referrals", json=referral_body(kaliyan_mith)
        )
        assert sent.status_code == 201, sent.text
        arrived = wait_for(lambda: _received(siem_reap, kaliyan_mith), seconds=15)
        receiver = _api(siem_reap)
        for status in ("received", "accepted"):
            moved = receiver.post(
                f"{siem_reap['url']}/api/v1/referrals/{arrived['id']}/status",
                json={"status": status},
                headers={"If-Match": f'"{arrived["version"]}"'},
            )
            assert moved.status_code == 200, moved.text
            arrived = moved.json()
        sender_view = f"{phnom_penh['url']}/api/v1/referrals/{sent.json()['id']}"
        wait_for(
            lambda: _api(phnom_penh).get(sender_view).json()["status"] == "accepted", seconds=15
        )
    finally:
        _stop(process)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{siem_reap['url']}/healthz", timeout=2)

    process, again = _start(tmp_path, ports)
    try:
        assert again["peering"] == "already in place"
        assert [_directory(phnom_penh), _directory(siem_reap)] == directories
        assert _peers(phnom_penh, tmp_path) == [("Siem Reap network", "active", True, True)]
        assert _peers(siem_reap, tmp_path) == [("Phnom Penh network", "active", True, True)]
        assert _received(siem_reap, kaliyan_mith)["status"] == "accepted"
    finally:
        _stop(process)
