"""The audit sequencer: requests only record, the worker's sequencer seals after their commit
(or on its beat, for other processes' commits) within the seal delay, and the chain it builds
under concurrent writers verifies end to end and names a tampered row (issue 13)."""

import threading
import time
import uuid

import pytest
import requests
import sqlalchemy as sa

from referral_hub import clock
from referral_hub.audit import service as audit
from referral_hub.audit.models import AuditEntry, PendingAuditEntry
from referral_hub.extensions import db

from .referral_fixtures import network, referral_body
from .test_audit import INTACT, chain, tamper


def counts(fresh=True):
    if fresh:
        db.session.commit()  # a fresh snapshot
    return {
        model.__tablename__: db.session.scalar(sa.select(sa.func.count()).select_from(model))
        for model in (AuditEntry, PendingAuditEntry)
    }


def wait_until_sealed(seconds):
    deadline = time.monotonic() + seconds
    while counts()["audit_pending"] and time.monotonic() < deadline:
        time.sleep(0.02)
    return counts()


@pytest.fixture
def sequencer(app, monkeypatch):
    """The worker's sequencer, started with the seal delay the test sets first."""
    started = []

    def start(seal_delay_seconds):
        monkeypatch.setitem(app.config, "AUDIT_SEAL_DELAY_SECONDS", seal_delay_seconds)
        loop = audit.sequencer(app)
        monkeypatch.setitem(app.extensions, "hub_sequencer", loop)
        loop.start()
        started.append(loop)
        return loop

    yield start
    for loop in started:
        loop.stop()


def test_a_request_only_records_and_the_sequencer_seals_after_its_commit(sequencer):
    sequencer(seal_delay_seconds=40)  # a beat of 10 s: only the commit's wake seals in time
    audit.record("user:u1", None, "referral.read", "referral", "r1")
    db.session.flush()
    assert counts(fresh=False) == {"audit_entries": 0, "audit_pending": 1}
    assert wait_until_sealed(5) == {"audit_entries": 1, "audit_pending": 0}  # commits first
    assert chain(audit.verify()) == INTACT | {"checked": 1}


def test_uncommitted_entries_are_never_sealed(sequencer):
    sequencer(seal_delay_seconds=0.2)
    audit.record("user:u1", None, "referral.read", "referral", "r1")
    db.session.flush()
    time.sleep(0.3)
    db.session.rollback()
    assert counts() == {"audit_entries": 0, "audit_pending": 0}


def test_entries_committed_elsewhere_are_sealed_on_the_beat_within_the_delay(sequencer):
    """Another process's commit does not wake this one's sequencer: its beat seals them."""
    sequencer(seal_delay_seconds=2)
    row = {"actor": "client:c1", "action": "service.updated", "resource_type": "service"}
    with db.engine.begin() as connection:  # no ORM session: no wake
        connection.execute(
            sa.insert(PendingAuditEntry),
            [row | {"at": clock.now(), "resource_id": f"s{n}", "details": {}} for n in range(3)],
        )
    assert wait_until_sealed(5) == {"audit_entries": 3, "audit_pending": 0}
    result = audit.verify()
    assert chain(result) == INTACT | {"checked": 3}
    assert result["sealing"]["longest_seal_delay_seconds"] <= 2


def test_eight_writers_for_ten_seconds_then_one_tampered_row_is_named(
    app, client, live_server, sequencer
):
    """Referral creates over real HTTP from 8 threads for 10 s while the sequencer seals and a
    second one (another worker process) competes with it; then `verify` holds, and after one
    row is altered it fails at that row."""
    net = network(app, client)
    db.session.commit()
    body = referral_body(net["service"].id)
    sequencer(seal_delay_seconds=2)
    rival_stop = threading.Event()
    outcomes, errors = [], []

    def write():
        session = requests.Session()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            headers = {**net["sender"].headers, "Idempotency-Key": str(uuid.uuid4())}
            answer = session.post(f"{live_server}/api/v1/referrals", json=body, headers=headers)
            outcomes.append(answer.status_code)

    def rival():
        with app.app_context():
            try:
                while not rival_stop.is_set():
                    audit.seal(batch=7)
                    time.sleep(0.01)
            except Exception as exc:  # reported below
                errors.append(exc)
            finally:
                db.session.remove()

    writers = [threading.Thread(target=write) for _ in range(8)]
    rival_thread = threading.Thread(target=rival)
    for thread in [rival_thread, *writers]:
        thread.start()
    for thread in writers:
        thread.join(timeout=60)
    rival_stop.set()
    rival_thread.join(timeout=30)
    assert not errors
    assert outcomes and set(outcomes) == {201}
    sealed = wait_until_sealed(10)
    assert sealed["audit_pending"] == 0 and sealed["audit_entries"] >= len(outcomes)
    result = audit.verify()
    assert chain(result) == INTACT | {"checked": sealed["audit_entries"]}
    assert result["sealing"]["pending"] == 0
    middle = sealed["audit_entries"] // 2
    tamper("UPDATE audit_entries SET action = 'referral.withdrawn' WHERE seq = :seq", seq=middle)
    broken = audit.verify()
    assert (broken["ok"], broken["first_broken_seq"], broken["checked"]) == (
        False,
        middle,
        middle - 1,
    )
