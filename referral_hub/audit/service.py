"""The audit log: record who read or changed what, seal it into a chain, verify it, list it.

`record` adds an entry to the caller's transaction as a plain INSERT into audit_pending, so
requests never queue on each other for the log. The sequencer (`seal`, run by the worker's
`sequencer` thread, woken after this process's commits and on a beat, and by `referral-hub
audit seal`) then moves pending entries into audit_entries in batches, in the order they were
recorded: it gives each the next seq and chains it to the one before by sha256 (see
`entry_hash`), and the single `audit_head` row names the last one. It holds the head's write
lock while it seals (the row lock on PostgreSQL, the database write lock on SQLite), so one
sequencer seals at a time across processes and the chain never forks. This is how Certificate
Transparency logs integrate submissions within a maximum merge delay: here
AUDIT_SEAL_DELAY_SECONDS, measured as sealed_at - at on every entry.

No personal data enters the log: details take only the keys of ALLOWED_DETAIL_KEYS, and their
values are short codes (no spaces, no '@'), numbers, booleans, null or lists of those. Names,
contact details, free-text notes or reasons written by people never go in; put a code instead
("reason": "no_capacity") or leave them out. Adding a key is a reviewed change to this list.

The database refuses UPDATE and DELETE on audit_entries (triggers made by the migration). Its
owner (or a superuser) can still suspend them, as `suspend_append_only` does for test cleanup,
and so could an attacker holding those rights: that is what `verify` detects. It cannot detect
a rewrite that recomputes every later hash and the head; keep copies of the head's hash
elsewhere (e.g. the output of `referral-hub audit verify`) to catch that too. Nor can it see
an entry deleted while still pending, within the seal delay: the chain covers what is sealed.
"""

import contextlib
import hashlib
import json
import logging
import re
from datetime import UTC

from flask import current_app
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from .. import clock, commit_hooks, persistence
from ..background import WokenLoop
from ..extensions import db
from ..pagination import paginate
from .models import GENESIS_HASH, AuditEntry, AuditHead, PendingAuditEntry

log = logging.getLogger(__name__)
HEAD_ID = 1
VERIFY_BATCH = 1000
SEAL_BATCH = 500
# What a request records; the sequencer adds seq, prev_hash, hash and sealed_at.
RECORDED = ("at", "actor", "organization_id", "action", "resource_type", "resource_id", "details")

# Non-personal facts an entry may carry in details, and what each is for.
ALLOWED_DETAIL_KEYS = frozenset(
    {
        "categories",  # which categories of personal data were read, e.g. ["identity", "health"]
        "fields",  # names of the fields changed, never their values
        "from",  # previous status code
        "to",  # new status code
        "status",  # a status code
        "reason",  # a reason code, never free text
        "outcome",  # an outcome code
        "count",  # how many items were read or changed
        "scope",  # scopes (a list) or one scope
        "roles",  # role names
        "version",  # a version number or tag
        "urgency",  # an urgency code
    }
)
CODE = re.compile(r"^[A-Za-z0-9_.:+/-]{0,100}\Z")
MAX_LIST = 50


def _check_code(name, value, max_length):
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise ValueError(f"audit {name} must be a code of 1 to {max_length} characters")
    if not re.fullmatch(r"[A-Za-z0-9_.:+/-]+", value):
        raise ValueError(f"audit {name} must be a code (no spaces or '@'), got {value!r}")


def _check_value(key, value):
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, str):
        if not CODE.match(value):
            raise ValueError(
                f"audit detail {key!r} must be a code (no spaces or '@', at most 100 characters)"
            )
        return
    raise ValueError(f"audit detail {key!r} must be a code, a number, a boolean or null")


def check_details(details):
    """The details as a plain dict, or ValueError if they could carry personal data."""
    details = dict(details or {})
    unknown = set(details) - ALLOWED_DETAIL_KEYS
    if unknown:
        raise ValueError(f"audit details may not have the keys: {', '.join(sorted(unknown))}")
    for key, value in details.items():
        if isinstance(value, list | tuple):
            if len(value) > MAX_LIST:
                raise ValueError(f"audit detail {key!r} has more than {MAX_LIST} items")
            for item in value:
                _check_value(key, item)
            details[key] = list(value)
        else:
            _check_value(key, value)
    return details


def _iso(moment):
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def entry_hash(
    seq, at, actor, organization_id, action, resource_type, resource_id, details, prev_hash
):
    """sha256 (hex) of the entry's canonical JSON array; `at` as UTC ISO 8601 with microseconds."""
    canonical = json.dumps(
        [
            seq,
            _iso(at),
            actor,
            organization_id,
            action,
            resource_type,
            resource_id,
            details,
            prev_hash,
        ],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def record(principal_label, organization_id, action, resource_type, resource_id, details=None):
    """Write one entry in the current transaction (the caller commits) and return it; the
    sequencer seals it after the commit. Written at once, by one INSERT, rather than at the
    next flush: a flush of the unit of work for it was a sixth of a create's time.

    principal_label names who acted (directory.service.actor(principal)). Raises ValueError when
    details have keys outside ALLOWED_DETAIL_KEYS or values that are not codes.
    """
    details = check_details(details)
    _check_code("actor", principal_label, 120)
    _check_code("action", action, 60)
    _check_code("resource_type", resource_type, 30)
    if resource_id is not None:
        _check_code("resource_id", resource_id, 36)
    entry = PendingAuditEntry(
        at=clock.now().astimezone(UTC),
        actor=principal_label,
        organization_id=organization_id,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        details=details,
    )
    persistence.insert(entry)
    commit_hooks.mark("audit_recorded")
    return entry


def _lock_head():
    """The head's (seq, last hash), holding its write lock until the transaction ends; made
    first for an empty log (another sequencer may be making it too)."""
    lock = (
        update(AuditHead)
        .where(AuditHead.id == HEAD_ID)
        .values(seq=AuditHead.seq)
        .returning(AuditHead.seq, AuditHead.last_hash)
        .execution_options(synchronize_session=False)
    )
    head = db.session.execute(lock).first()
    if head is None:
        if db.session.scalar(select(func.max(AuditEntry.seq))) is not None:
            raise RuntimeError(
                "The audit head is missing but the log has entries; "
                "run `referral-hub audit verify`."
            )
        try:
            with db.session.begin_nested():
                db.session.add(AuditHead(id=HEAD_ID, seq=0, last_hash=GENESIS_HASH))
        except IntegrityError:
            pass  # made by a concurrent first seal
        head = db.session.execute(lock).one()
    return head


def seal(batch=SEAL_BATCH):
    """Chain up to `batch` pending entries onto the head, oldest first, and commit; returns how
    many were sealed (fewer than `batch`: none are left for now)."""
    if db.session.scalar(select(PendingAuditEntry.id).limit(1)) is None:
        db.session.rollback()  # nothing to do: no lock taken
        return 0
    seq, prev_hash = _lock_head()
    pending = db.session.scalars(
        select(PendingAuditEntry).order_by(PendingAuditEntry.id).limit(batch)
    ).all()
    sealed_at = clock.now().astimezone(UTC)
    rows = []
    for entry in pending:
        seq += 1
        values = {name: getattr(entry, name) for name in RECORDED} | {
            "seq": seq,
            "prev_hash": prev_hash,
        }
        prev_hash = entry_hash(**values)
        rows.append(values | {"hash": prev_hash, "sealed_at": sealed_at})
    if rows:
        db.session.execute(insert(AuditEntry), rows)
        db.session.execute(
            delete(PendingAuditEntry)
            .where(PendingAuditEntry.id.in_([entry.id for entry in pending]))
            .execution_options(synchronize_session=False)
        )
        db.session.execute(
            update(AuditHead)
            .where(AuditHead.id == HEAD_ID)
            .values(seq=seq, last_hash=prev_hash)
            .execution_options(synchronize_session=False)
        )
        _warn_if_late(pending[0].at, sealed_at)
    db.session.commit()
    return len(rows)


def seal_all():
    """Seal every pending entry now; returns how many (for the CLI and tests)."""
    total = 0
    while sealed := seal():
        total += sealed
    return total


def _warn_if_late(oldest_at, sealed_at):
    waited = (sealed_at - oldest_at).total_seconds()
    if waited > current_app.config["AUDIT_SEAL_DELAY_SECONDS"]:
        log.warning("audit entries waited %.1f s to be sealed", waited)


def sequencer(app):
    """The worker's thread that seals: woken after this process's commits that recorded an
    entry, and on a beat a quarter of AUDIT_SEAL_DELAY_SECONDS (entries of other processes)."""
    return WokenLoop(
        app,
        "audit-sequencer",
        lambda: seal() == SEAL_BATCH,
        app.config["AUDIT_SEAL_DELAY_SECONDS"] / 4,
        "sealing audit entries failed; the next beat tries again",
    )


# Sealing starts right after the commit that recorded, not at the next beat.
commit_hooks.after_commit("audit_recorded", lambda extensions: extensions["hub_sequencer"].wake())


def _broken(checked, seq, reason):
    return {"ok": False, "checked": checked, "first_broken_seq": seq, "reason": reason}


def verify():
    """Walk the sealed chain from seq 1 and report the first broken link, then what is pending.

    Reads the head first and checks the entries up to its seq, in batches by seq (memory stays
    bounded), so seals running meanwhile are not mistaken for tampering. Finds an altered
    entry (its hash differs), a deleted one (a gap in seq), a deleted tail (the head names a
    later seq or another hash) and entries the head does not cover. Adds `sealing`: how many
    entries wait for the sequencer, how long the oldest has waited, and the longest any
    checked entry waited to be sealed (AUDIT_SEAL_DELAY_SECONDS bounds it when the worker runs).
    """
    head = db.session.execute(
        select(AuditHead.seq, AuditHead.last_hash).where(AuditHead.id == HEAD_ID)
    ).first()
    head_seq, head_hash = head if head else (0, GENESIS_HASH)
    result, longest_seal_delay = _walk(head_seq, head_hash)
    if result["ok"]:
        result = _uncovered(result)
    return result | {"sealing": _sealing(longest_seal_delay)}


def _walk(head_seq, head_hash):
    """The chain up to the head's seq: (the verdict, the longest wait to be sealed)."""
    columns = [getattr(AuditEntry, name) for name in ("seq", *RECORDED, "prev_hash", "hash")]
    checked, last_seq, last_hash, longest = 0, 0, GENESIS_HASH, None
    while True:
        rows = db.session.execute(
            select(*columns, AuditEntry.sealed_at)
            .where(AuditEntry.seq > last_seq, AuditEntry.seq <= head_seq)
            .order_by(AuditEntry.seq)
            .limit(VERIFY_BATCH)
        ).all()
        if not rows:
            break
        for row in rows:
            values = row._asdict()
            stored, sealed_at = values.pop("hash"), values.pop("sealed_at")
            if row.seq != last_seq + 1:
                return _broken(checked, last_seq + 1, f"entry {last_seq + 1} is missing"), longest
            if row.prev_hash != last_hash:
                broken = _broken(checked, row.seq, "prev_hash does not match the previous entry")
                return broken, longest
            if entry_hash(**values) != stored:
                broken = _broken(checked, row.seq, "the entry's hash does not match its content")
                return broken, longest
            if sealed_at is not None:
                waited = (sealed_at - row.at).total_seconds()
                longest = waited if longest is None else max(longest, waited)
            checked, last_seq, last_hash = checked + 1, row.seq, stored
    if last_seq < head_seq:
        missing = f"entries {last_seq + 1} to {head_seq} are missing (head)"
        return _broken(checked, last_seq + 1, missing), longest
    if last_hash != head_hash:
        return _broken(checked, last_seq, "the head's hash does not match the last entry"), longest
    return {"ok": True, "checked": checked, "first_broken_seq": None, "reason": None}, longest


def _uncovered(verdict):
    """The verdict, or a break if entries lie past the head now (beyond concurrent seals); one
    statement, so one snapshot."""
    highest, now_head = db.session.execute(
        select(
            select(func.max(AuditEntry.seq)).scalar_subquery(),
            select(AuditHead.seq).where(AuditHead.id == HEAD_ID).scalar_subquery(),
        )
    ).one()
    if highest is not None and highest > (now_head or 0):
        reason = "entries after the head's seq (head missing or reset)"
        return _broken(verdict["checked"], (now_head or 0) + 1, reason)
    return verdict


def _sealing(longest_seal_delay):
    count, oldest = db.session.execute(
        select(func.count(), func.min(PendingAuditEntry.at)).select_from(PendingAuditEntry)
    ).one()
    waiting = None if oldest is None else (clock.now() - oldest).total_seconds()
    return {
        "pending": count,
        "oldest_pending_seconds": _seconds(waiting),
        "longest_seal_delay_seconds": _seconds(longest_seal_delay),
    }


def _seconds(value):
    return None if value is None else round(max(value, 0.0), 3)


def entries(principal, filters, page_args, newest_first=False):
    """A page of entries by seq (the API's order) or newest first (the page's), for
    coordinators; filters: resource_type, resource_id, action, actor (exact) and since
    (entries at or after)."""
    principal.require_role("coordinator")
    query = select(AuditEntry)
    for name in ("resource_type", "resource_id", "action", "actor"):
        if filters.get(name) is not None:
            query = query.where(getattr(AuditEntry, name) == filters[name])
    if filters.get("since") is not None:
        query = query.where(AuditEntry.at >= filters["since"])
    return paginate(query, AuditEntry.seq, AuditEntry.seq, page_args, descending=newest_first)


@contextlib.contextmanager
def suspend_append_only(connection):
    """Lift audit_entries' append-only triggers within the connection's transaction.

    For purges and the tests' cleanup. The triggers come back when the block ends; if the
    transaction rolls back instead, they were never off (DDL is transactional on both
    databases), and other sessions never see them off. On PostgreSQL this needs the table's
    owner or a superuser and locks the table until the transaction ends.
    """
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("ALTER TABLE audit_entries DISABLE TRIGGER USER")
        yield
        connection.exec_driver_sql("ALTER TABLE audit_entries ENABLE TRIGGER USER")
        return
    if connection.dialect.name != "sqlite":
        yield
        return
    if not connection.connection.dbapi_connection.in_transaction:
        # pysqlite would run DROP TRIGGER outside any transaction; open one so it rolls back.
        connection.exec_driver_sql("BEGIN")
    triggers = connection.execute(
        text(
            "SELECT name, sql FROM sqlite_master "
            "WHERE type = 'trigger' AND tbl_name = 'audit_entries' ORDER BY name"
        )
    ).all()
    for name, _sql in triggers:
        connection.exec_driver_sql(f'DROP TRIGGER "{name}"')
    yield
    for _name, sql in triggers:
        connection.exec_driver_sql(sql)
