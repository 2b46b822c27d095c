"""The audit log: hash-chained, append-only, verified, and readable by coordinators only."""

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask.cli import ScriptInfo

from referral_hub import clock
from referral_hub.audit import service as audit
from referral_hub.audit.cli import audit_cli
from referral_hub.audit.models import GENESIS_HASH, AuditEntry, AuditHead, PendingAuditEntry
from referral_hub.extensions import db

from .factories import bearer, client_token, make_client, make_org, make_user, user_tokens

ORG = "0b6f3c1e-0000-4000-8000-000000000001"


def append(count, resource_type="referral", actor="user:u1", action="referral.read"):
    for number in range(count):
        audit.record(
            actor,
            ORG,
            action,
            resource_type,
            f"r{number}",
            {"categories": ["identity", "health"], "count": number},
        )
    db.session.commit()
    audit.seal_all()


def chain(result):
    """What verify says of the sealed chain, without what waits to be sealed."""
    return {key: value for key, value in result.items() if key != "sealing"}


INTACT = {"ok": True, "first_broken_seq": None, "reason": None}


def tamper(sql, **params):
    """What the table's owner or a superuser could do: lift the triggers and change rows."""
    db.session.remove()
    with db.engine.begin() as connection, audit.suspend_append_only(connection):
        connection.execute(sa.text(sql), params)


def test_entries_are_chained_from_genesis_and_the_head_names_the_last():
    append(3)
    rows = db.session.scalars(sa.select(AuditEntry).order_by(AuditEntry.seq)).all()
    assert [row.seq for row in rows] == [1, 2, 3]
    assert rows[0].prev_hash == GENESIS_HASH
    assert [row.prev_hash for row in rows[1:]] == [row.hash for row in rows[:-1]]
    for row in rows:
        assert row.hash == audit.entry_hash(
            row.seq,
            row.at,
            row.actor,
            row.organization_id,
            row.action,
            row.resource_type,
            row.resource_id,
            row.details,
            row.prev_hash,
        )
    head = db.session.get(AuditHead, 1)
    assert (head.seq, head.last_hash) == (3, rows[-1].hash)
    assert chain(audit.verify()) == INTACT | {"checked": 3}


def test_an_empty_log_verifies():
    assert audit.verify()["ok"] is True


def test_concurrent_writers_and_sequencers_never_fork_the_chain(app):
    """Four writers record while two sequencers (as two worker processes would) seal."""
    writers, per_writer, errors = 4, 10, []
    start = threading.Barrier(writers + 2)
    writing = threading.Event()

    def write(number):
        with app.app_context():
            try:
                start.wait()
                for i in range(per_writer):
                    audit.record(f"client:c{number}", None, "service.updated", "service", f"s{i}")
                    db.session.commit()
            except Exception as exc:  # reported below
                errors.append(exc)
            finally:
                db.session.remove()

    def seal():
        with app.app_context():
            try:
                start.wait()
                while writing.is_set():
                    audit.seal(batch=3)
            except Exception as exc:  # reported below
                errors.append(exc)
            finally:
                db.session.remove()

    writing.set()
    writer_threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    sealer_threads = [threading.Thread(target=seal) for _ in range(2)]
    for thread in writer_threads + sealer_threads:
        thread.start()
    for thread in writer_threads:
        thread.join(timeout=120)
    writing.clear()
    for thread in sealer_threads:
        thread.join(timeout=120)
    assert not errors
    audit.seal_all()
    seqs = db.session.scalars(sa.select(AuditEntry.seq).order_by(AuditEntry.seq)).all()
    assert seqs == list(range(1, writers * per_writer + 1))
    assert chain(audit.verify()) == INTACT | {"checked": writers * per_writer}


def test_an_altered_entry_is_the_first_broken_link():
    append(5)
    tamper("UPDATE audit_entries SET details = :details WHERE seq = 3", details='{"count": 99}')
    result = audit.verify()
    assert result["ok"] is False
    assert (result["first_broken_seq"], result["checked"]) == (3, 2)
    assert "hash" in result["reason"]


def test_an_altered_entry_with_a_recomputed_hash_breaks_the_next_link():
    append(5)
    row = db.session.get(AuditEntry, 3)
    forged = audit.entry_hash(
        3,
        row.at,
        "user:someone-else",
        row.organization_id,
        row.action,
        row.resource_type,
        row.resource_id,
        row.details,
        row.prev_hash,
    )
    tamper(
        "UPDATE audit_entries SET actor = 'user:someone-else', hash = :hash WHERE seq = 3",
        hash=forged,
    )
    result = audit.verify()
    assert (result["ok"], result["first_broken_seq"]) == (False, 4)
    assert "prev_hash" in result["reason"]


def test_a_deleted_entry_is_a_gap():
    append(5)
    tamper("DELETE FROM audit_entries WHERE seq = 2")
    result = audit.verify()
    assert (result["ok"], result["first_broken_seq"], result["checked"]) == (False, 2, 1)
    assert "missing" in result["reason"]


def test_a_deleted_last_entry_is_found_through_the_head():
    append(4)
    tamper("DELETE FROM audit_entries WHERE seq = 4")
    result = audit.verify()
    assert (result["ok"], result["first_broken_seq"], result["checked"]) == (False, 4, 3)


def test_a_deleted_head_is_found_and_stops_sealing():
    append(2)
    db.session.execute(sa.delete(AuditHead))
    db.session.commit()
    assert audit.verify()["first_broken_seq"] == 1
    audit.record("system", None, "referral.escalated", "referral", "r1")
    db.session.commit()
    with pytest.raises(RuntimeError, match="head is missing"):
        audit.seal()
    assert audit.verify()["sealing"]["pending"] == 1


@pytest.mark.parametrize(
    "details",
    [
        {"name": "Sok Dara"},
        {"email": "x@example.org"},
        {"reason": "the father hit him"},
        {"categories": ["identity", "dara@example.org"]},
        {"fields": {"name": "Sok"}},
    ],
)
def test_personal_data_is_refused(details):
    with pytest.raises(ValueError):
        audit.record("user:u1", ORG, "referral.read", "referral", "r1", details)
    db.session.commit()
    for table in (AuditEntry, PendingAuditEntry):
        assert db.session.scalar(sa.select(sa.func.count()).select_from(table)) == 0


def refused(statement):
    """True when the database refuses the statement as a change to the append-only log."""
    try:
        with db.engine.begin() as connection:
            connection.execute(sa.text(statement))
    except sa.exc.DBAPIError as exc:
        return "append-only" in str(exc)
    return False


def test_the_database_refuses_changes_to_entries():
    append(2)
    db.session.remove()
    statements = ["UPDATE audit_entries SET actor = 'system'", "DELETE FROM audit_entries"]
    if db.engine.dialect.name == "postgresql":
        statements.append("TRUNCATE audit_entries")
    for statement in statements:
        assert refused(statement), statement

    # A purge that fails leaves the triggers in place; one that ends brings them back.
    with pytest.raises(ZeroDivisionError):  # noqa: SIM117
        with db.engine.begin() as connection, audit.suspend_append_only(connection):
            1 / 0  # noqa: B018
    assert refused("DELETE FROM audit_entries")
    tamper("UPDATE audit_entries SET actor = 'system' WHERE seq = 1")
    assert refused("DELETE FROM audit_entries")
    assert audit.verify()["first_broken_seq"] == 1


def coordinator(app, scope="reports:read"):
    return user_tokens(app, make_user(make_org(), roles=["coordinator"]), scope)["access_token"]


def test_coordinators_read_pages_and_filters(client, app):
    token = coordinator(app)
    moment = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    try:
        clock.freeze(moment)
        append(3, resource_type="probe", actor="user:a")
        clock.freeze(moment + timedelta(days=2))
        append(2, resource_type="probe", actor="client:b", action="referral.status_changed")
    finally:
        clock.freeze(None)

    first = client.get("/api/v1/audit?resource_type=probe&limit=2", headers=bearer(token))
    assert first.status_code == 200
    body = first.get_json()
    assert [item["seq"] for item in body["items"]] == sorted(i["seq"] for i in body["items"])
    assert set(body["items"][0]) == {
        "seq",
        "at",
        "actor",
        "organization_id",
        "action",
        "resource_type",
        "resource_id",
        "details",
        "hash",
    }
    assert body["items"][0]["details"] == {"categories": ["identity", "health"], "count": 0}
    seen = [item["seq"] for item in body["items"]]
    cursor = body["next_cursor"]
    while cursor:
        page = client.get(
            "/api/v1/audit",
            query_string={"resource_type": "probe", "limit": 2, "cursor": cursor},
            headers=bearer(token),
        ).get_json()
        seen += [item["seq"] for item in page["items"]]
        cursor = page["next_cursor"]
    assert len(seen) == 5 and seen == sorted(seen)

    def found(**query):
        response = client.get("/api/v1/audit", query_string=query, headers=bearer(token))
        assert response.status_code == 200, response.get_json()
        return response.get_json()["items"]

    assert len(found(resource_type="probe", actor="client:b")) == 2
    assert len(found(resource_type="probe", action="referral.read")) == 3
    assert [i["resource_id"] for i in found(resource_type="probe", resource_id="r1")] == ["r1"] * 2
    recent = found(resource_type="probe", since="2026-11-02T00:00:00Z")
    assert {item["actor"] for item in recent} == {"client:b"}
    assert len(found(resource_type="probe", since="2026-11-02T00:00:00")) == 2  # no zone: UTC
    assert found(resource_type="nothing") == []


def test_only_coordinators_read_the_log(client, app, partner):
    caseworker = user_tokens(app, make_user(make_org(), roles=["caseworker"]), "reports:read")
    response = client.get("/api/v1/audit", headers=bearer(caseworker["access_token"]))
    assert response.status_code == 403
    organization = make_org()
    client_id, secret = make_client(organization, ["reports:read"])
    machine = client_token(client, client_id, secret, "reports:read")
    assert client.get("/api/v1/audit", headers=bearer(machine)).status_code == 403
    assert client.get("/api/v1/audit").status_code == 401


def test_the_audit_list_refuses_unknown_parameters(client, app):
    token = coordinator(app)
    for query in ({"name": "Sok"}, {"since": "yesterday"}, {"limit": 0}, {"cursor": "x"}):
        response = client.get("/api/v1/audit", query_string=query, headers=bearer(token))
        assert response.status_code == 422, query


def test_a_token_without_reports_read_is_refused(client, app):
    token = coordinator(app, scope="directory:read")
    assert client.get("/api/v1/audit", headers=bearer(token)).status_code == 403


def test_cli_verify_exits_non_zero_after_tampering(app):
    append(3)

    def verify():
        result = CliRunner().invoke(audit_cli, ["verify"], obj=ScriptInfo(create_app=lambda: app))
        return result.exit_code, json.loads(result.stdout)

    code, result = verify()
    assert (code, chain(result)) == (0, INTACT | {"checked": 3})
    tamper("UPDATE audit_entries SET action = 'referral.created' WHERE seq = 2")
    code, result = verify()
    assert (code, result["ok"], result["first_broken_seq"]) == (1, False, 2)


def test_cli_seal_seals_what_is_pending_and_verify_says_what_waits(app):
    def run(command):
        result = CliRunner().invoke(audit_cli, [command], obj=ScriptInfo(create_app=lambda: app))
        return result.exit_code, json.loads(result.stdout)

    for number in range(2):
        audit.record("system", None, "referral.escalated", "referral", f"r{number}")
    db.session.commit()
    code, waiting = run("verify")
    assert (code, waiting["checked"], waiting["sealing"]["pending"]) == (0, 0, 2)
    assert run("seal") == (0, {"sealed": 2})
    code, sealed = run("verify")
    assert (code, sealed["checked"], sealed["sealing"]["pending"]) == (0, 2, 0)
