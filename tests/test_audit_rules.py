"""The audit log's rules with plain values: what an entry may hold, how it is hashed, and
what `verify` tells an auditor about each kind of break."""

import hashlib
import logging
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from referral_hub import clock
from referral_hub.audit import service as audit
from referral_hub.audit.models import GENESIS_HASH, AuditEntry, PendingAuditEntry
from referral_hub.extensions import db
from referral_hub.web.session import principal_of

from .costs import cost
from .factories import bearer, make_org, make_user
from .test_audit import ORG, append, chain, coordinator, tamper


def broken(checked, seq, reason):
    return {"ok": False, "checked": checked, "first_broken_seq": seq, "reason": reason}


# What an entry may hold


@pytest.mark.parametrize(
    ("name", "longest"),
    [("actor", 120), ("action", 60), ("resource_type", 30), ("resource_id", 36)],
)
def test_the_names_of_an_entry_are_codes_of_bounded_length(name, longest):
    names = {"actor": "user:u1", "action": "referral.read", "resource_type": "referral"}
    names["resource_id"] = "r1"

    def record(value):
        values = {**names, name: value}
        return audit.record(
            values["actor"], ORG, values["action"], values["resource_type"], values["resource_id"]
        )

    assert getattr(record("A" * longest), name) == "A" * longest
    for refused in ("a" * (longest + 1), "", "Sok Dara", "dara@example.org", 7):
        with pytest.raises(ValueError, match=f"audit {name} must be a code"):
            record(refused)
    db.session.rollback()


def test_an_entry_about_no_one_resource_has_no_resource_id():
    entry = audit.record("system", None, "reports.computed", "report", None)
    assert (entry.resource_id, entry.organization_id, entry.details) == (None, None, {})
    assert audit.verify()["ok"] is True


def test_detail_values_are_short_codes_numbers_booleans_null_or_short_lists_of_them():
    details = {
        "categories": ("identity", "health"),
        "count": 3,
        "status": None,
        "version": True,
        "reason": "r" * 100,
        "fields": ["f"] * audit.MAX_LIST,
    }
    entry = audit.record("user:u1", ORG, "referral.read", "referral", "r1", details)
    assert entry.details == {**details, "categories": ["identity", "health"]}
    not_a_code = "must be a code, a number, a boolean or null"
    too_long = "must be a code (no spaces or '@', at most 100 characters)"
    too_many = f"has more than {audit.MAX_LIST} items"
    refused = [  # each message names the key at fault, never its value
        ({"reason": "r" * 101}, f"'reason' {too_long}"),
        ({"fields": ["f"] * (audit.MAX_LIST + 1)}, f"'fields' {too_many}"),
        ({"count": 1.5}, f"'count' {not_a_code}"),
        ({"fields": [{"name": "Sok"}]}, f"'fields' {not_a_code}"),
        ({"fields": [["nested"]]}, f"'fields' {not_a_code}"),
    ]
    for details, message in refused:
        with pytest.raises(ValueError) as refusal:
            audit.check_details(details)
        assert str(refusal.value) == f"audit detail {message}"
    with pytest.raises(ValueError) as refusal:
        audit.check_details({"name": "Sok", "count": 1, "email": "sok@example.org"})
    assert str(refusal.value) == "audit details may not have the keys: email, name"
    db.session.rollback()


# How an entry is hashed


@pytest.fixture
def server_zone(monkeypatch):
    """The server's local time is Phnom Penh's during the test."""
    monkeypatch.setenv("TZ", "Asia/Phnom_Penh")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_the_hash_is_sha256_of_the_published_canonical_form_whatever_the_time_zone(server_zone):
    """An auditor recomputes it without the hub: a JSON array, `at` in UTC with microseconds,
    whatever the zone of the entry's time or of the server."""
    at = datetime(2026, 11, 20, 16, 30, 5, 120, tzinfo=timezone(timedelta(hours=7)))
    fields = ["user:u1", "ក-org", "referral.read", "referral", "r1", {"count": 1, "b": [1]}]
    canonical = (
        '[3,"2026-11-20T09:30:05.000120+00:00","user:u1","ក-org","referral.read",'
        '"referral","r1",{"b":[1],"count":1},"' + GENESIS_HASH + '"]'
    )
    expected = hashlib.sha256(canonical.encode()).hexdigest()
    assert audit.entry_hash(3, at, *fields, GENESIS_HASH) == expected
    assert audit.entry_hash(3, at.astimezone(UTC), *fields, GENESIS_HASH) == expected


def test_an_entry_is_stamped_with_the_clocks_time_in_utc_and_sealed_later():
    moment = datetime(2026, 11, 20, 9, 30, 5, 120, tzinfo=UTC)
    clock.freeze(moment.astimezone(timezone(timedelta(hours=7))))
    try:
        audit.record("user:u1", ORG, "referral.read", "referral", "r1")
        db.session.commit()
        clock.freeze(moment + timedelta(seconds=2.5))
        assert audit.verify()["sealing"] == {
            "pending": 1,
            "oldest_pending_seconds": 2.5,
            "longest_seal_delay_seconds": None,
        }
        clock.freeze(moment + timedelta(seconds=1.5))
        assert audit.seal_all() == 1
    finally:
        clock.freeze(None)
    stored = db.session.scalars(sa.select(AuditEntry)).one()
    assert stored.at == moment and stored.at.utcoffset() == timedelta(0)
    assert stored.sealed_at == moment + timedelta(seconds=1.5)
    result = audit.verify()
    assert result["ok"] is True
    assert result["sealing"] == {
        "pending": 0,
        "oldest_pending_seconds": None,
        "longest_seal_delay_seconds": 1.5,
    }


# What verify reports


def test_an_entry_is_written_at_once_in_order_and_goes_with_its_transaction():
    """One INSERT at each record, not a flush of the unit of work later; a rollback takes the
    entries back with the rest of the transaction."""
    pending = sa.select(PendingAuditEntry.resource_id).order_by(PendingAuditEntry.id)
    written, spent = cost(lambda: audit.record("user:u1", ORG, "referral.read", "referral", "r1"))
    assert spent == {"statements": 1, "commits": 0} and isinstance(written.id, int)
    audit.record("user:u1", ORG, "referral.read", "referral", "r2")
    assert not db.session.new
    assert db.session.connection().execute(pending).scalars().all() == ["r1", "r2"]
    db.session.rollback()
    assert db.session.execute(pending).scalars().all() == []


@pytest.mark.parametrize(
    ("tampering", "report"),
    [
        ("DELETE FROM audit_entries WHERE seq = 3", broken(2, 3, "entry 3 is missing")),
        (
            "UPDATE audit_entries SET prev_hash = :forged WHERE seq = 4",
            broken(3, 4, "prev_hash does not match the previous entry"),
        ),
        (
            "UPDATE audit_entries SET details = :altered WHERE seq = 2",
            broken(1, 2, "the entry's hash does not match its content"),
        ),
        (
            "DELETE FROM audit_entries WHERE seq >= 4",
            broken(3, 4, "entries 4 to 5 are missing (head)"),
        ),
        (
            "UPDATE audit_head SET last_hash = :forged",
            broken(5, 5, "the head's hash does not match the last entry"),
        ),
    ],
)
def test_verify_tells_the_auditor_the_first_broken_link_and_how_far_the_chain_held(
    tampering, report
):
    append(5)
    tamper(tampering, forged="0" * 64, altered='{"count": 9}')
    assert chain(audit.verify()) == report


def test_verify_finds_an_entry_the_head_does_not_cover():
    append(1)
    tamper("DELETE FROM audit_head")
    uncovered = broken(0, 1, "entries after the head's seq (head missing or reset)")
    assert chain(audit.verify()) == uncovered
    tamper(
        "INSERT INTO audit_head (id, seq, last_hash) VALUES (1, 0, :genesis)", genesis=GENESIS_HASH
    )
    assert chain(audit.verify()) == uncovered


def test_verify_walks_a_long_chain_in_order_batch_by_batch(monkeypatch):
    """Batches of two over seven entries; on PostgreSQL an updated row moves to the end of the
    table, so the walk must ask for seq order, not take the rows as stored."""
    append(7)
    tamper("UPDATE audit_entries SET actor = actor WHERE seq IN (1, 3)")
    monkeypatch.setattr(audit, "VERIFY_BATCH", 2)
    if db.engine.dialect.name == "postgresql":  # read the table as stored, as a large one is
        db.session.execute(sa.text("SET LOCAL enable_indexscan = off"))
        db.session.execute(sa.text("SET LOCAL enable_bitmapscan = off"))
    assert chain(audit.verify()) == {
        "ok": True,
        "checked": 7,
        "first_broken_seq": None,
        "reason": None,
    }
    tamper("UPDATE audit_entries SET details = :details WHERE seq = 6", details='{"count": 9}')
    assert chain(audit.verify()) == broken(5, 6, "the entry's hash does not match its content")


# Reading the log


def test_since_includes_the_entries_made_at_that_moment(client, app):
    token = coordinator(app)
    moment = datetime(2026, 11, 1, 8, 0, 0, 250000, tzinfo=UTC)
    clock.freeze(moment)
    try:
        append(2, resource_type="probe")
    finally:
        clock.freeze(None)
    for since, count in ((moment, 2), (moment + timedelta(microseconds=1), 0)):
        response = client.get(
            "/api/v1/audit",
            query_string={"resource_type": "probe", "since": since.isoformat()},
            headers=bearer(token),
        )
        assert len(response.get_json()["items"]) == count, since


def test_sealing_everything_counts_every_batch():
    for n in range(audit.SEAL_BATCH + 3):
        audit.record("system", None, "referral.expired", "referral", f"r{n}")
    db.session.commit()
    assert audit.seal_all() == audit.SEAL_BATCH + 3
    assert audit.verify()["checked"] == audit.SEAL_BATCH + 3


def test_the_log_page_reads_newest_first_a_page_at_a_time():
    append(3, resource_type="probe")
    reader = principal_of(make_user(make_org(), roles=["coordinator"]))
    pages, cursor = [], None
    while True:
        page_args = {"limit": 2, "cursor": cursor}
        rows, cursor = audit.entries(reader, {"resource_type": "probe"}, page_args, True)
        pages.append([row.resource_id for row in rows])
        if cursor is None:
            break
    assert pages == [["r2", "r1"], ["r0"]]


def test_a_seal_later_than_the_setting_is_logged_and_verify_gives_the_longest_wait(caplog):
    """The setting is 2 s. Entries recorded at T, T+0.45678 s, T+2.49877 s and T+4 s: the
    first two sealed together at T+0.6 s, the others one by one at T+6 s (3.50123 s late, then
    exactly 2 s)."""
    moment = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    hub_log = logging.getLogger("referral_hub")  # it does not propagate to the root logger
    hub_log.addHandler(caplog.handler)

    def at(seconds):
        clock.freeze(moment + timedelta(seconds=seconds))

    def warnings():
        found = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        caplog.clear()
        return found

    try:
        for recorded in (0, 0.45678):
            at(recorded)
            audit.record("system", None, "referral.expired", "referral", f"r{recorded}")
            db.session.commit()
        at(0.25)
        assert audit.verify()["sealing"]["oldest_pending_seconds"] == 0.25
        at(0.6)
        assert (audit.seal(batch=2), warnings()) == (2, [])
        for recorded in (2.49877, 4):
            at(recorded)
            audit.record("system", None, "referral.expired", "referral", f"r{recorded}")
            db.session.commit()
        at(6)
        assert (audit.seal(batch=1), warnings()) == (1, ["audit entries waited 3.5 s to be sealed"])
        assert (audit.seal(batch=1), warnings()) == (1, [])
    finally:
        clock.freeze(None)
        hub_log.removeHandler(caplog.handler)
    assert audit.verify()["sealing"]["longest_seal_delay_seconds"] == 3.501
