"""The audit log: record who read or changed what, verify the chain, list it for coordinators.

Every entry is chained to the one before by sha256 (see `entry_hash`), and the single
`audit_head` row names the last one. `record` appends inside the caller's transaction; call it
after the caller's other writes, just before the commit: it holds the head's write lock (the
row lock on PostgreSQL, the database write lock on SQLite) until the transaction ends, which
queues concurrent appenders so the chain never forks.

No personal data enters the log: details take only the keys of ALLOWED_DETAIL_KEYS, and their
values are short codes (no spaces, no '@'), numbers, booleans, null or lists of those. Names,
contact details, free-text notes or reasons written by people never go in; put a code instead
("reason": "no_capacity") or leave them out. Adding a key is a reviewed change to this list.

The database refuses UPDATE and DELETE on audit_entries (triggers made by the migration). Its
owner (or a superuser) can still suspend them, as `suspend_append_only` does for test cleanup,
and so could an attacker holding those rights: that is what `verify` detects. It cannot detect
a rewrite that recomputes every later hash and the head; keep copies of the head's hash
elsewhere (e.g. the output of `referral-hub audit verify`) to catch that too.
"""

import contextlib
import hashlib
import json
import re
from datetime import UTC

from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError

from .. import clock
from ..extensions import db
from ..pagination import paginate
from .models import GENESIS_HASH, AuditEntry, AuditHead

HEAD_ID = 1
VERIFY_BATCH = 1000

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


def _advance_head():
    """Add one to the head's seq, taking its write lock, and read (seq, last hash) in the same
    statement; None when there is no head yet."""
    return db.session.execute(
        update(AuditHead)
        .where(AuditHead.id == HEAD_ID)
        .values(seq=AuditHead.seq + 1)
        .returning(AuditHead.seq, AuditHead.last_hash)
        .execution_options(synchronize_session=False)
    ).first()


def _create_head():
    """Make the head row of an empty log; another transaction may be making it too."""
    if db.session.scalar(select(func.max(AuditEntry.seq))) is not None:
        return  # not empty: the head was made meanwhile by another append, or was deleted
    try:
        with db.session.begin_nested():
            db.session.add(AuditHead(id=HEAD_ID, seq=0, last_hash=GENESIS_HASH))
    except IntegrityError:
        pass  # made by a concurrent first append


def record(principal_label, organization_id, action, resource_type, resource_id, details=None):
    """Append one entry in the current transaction (the caller commits) and return it.

    principal_label names who acted (directory.service.actor(principal)). Raises ValueError when
    details have keys outside ALLOWED_DETAIL_KEYS or values that are not codes.
    """
    details = check_details(details)
    _check_code("actor", principal_label, 120)
    _check_code("action", action, 60)
    _check_code("resource_type", resource_type, 30)
    if resource_id is not None:
        _check_code("resource_id", resource_id, 36)
    head = _advance_head()
    if head is None:
        _create_head()
        head = _advance_head()
        if head is None:
            raise RuntimeError(
                "The audit head is missing but the log has entries; "
                "run `referral-hub audit verify`."
            )
    at = clock.now().astimezone(UTC)
    values = {
        "seq": head.seq,
        "at": at,
        "actor": principal_label,
        "organization_id": organization_id,
        "action": action,
        "resource_type": resource_type,
        "resource_id": resource_id,
        "details": details,
        "prev_hash": head.last_hash,
    }
    entry = AuditEntry(**values, hash=entry_hash(**values))
    db.session.add(entry)
    db.session.execute(  # flushes the entry first
        update(AuditHead)
        .where(AuditHead.id == HEAD_ID)
        .values(last_hash=entry.hash)
        .execution_options(synchronize_session=False)
    )
    return entry


def _broken(checked, seq, reason):
    return {"ok": False, "checked": checked, "first_broken_seq": seq, "reason": reason}


def verify():
    """Walk the chain from seq 1 and report the first broken link.

    Reads the head first and checks the entries up to its seq, in batches by seq (memory stays
    bounded), so appends running meanwhile are not mistaken for tampering. Finds an altered
    entry (its hash differs), a deleted one (a gap in seq), a deleted tail (the head names a
    later seq or another hash) and entries the head does not cover.
    """
    head = db.session.execute(
        select(AuditHead.seq, AuditHead.last_hash).where(AuditHead.id == HEAD_ID)
    ).first()
    head_seq, head_hash = head if head else (0, GENESIS_HASH)
    columns = (
        AuditEntry.seq,
        AuditEntry.at,
        AuditEntry.actor,
        AuditEntry.organization_id,
        AuditEntry.action,
        AuditEntry.resource_type,
        AuditEntry.resource_id,
        AuditEntry.details,
        AuditEntry.prev_hash,
        AuditEntry.hash,
    )
    checked, last_seq, last_hash = 0, 0, GENESIS_HASH
    while True:
        rows = db.session.execute(
            select(*columns)
            .where(AuditEntry.seq > last_seq, AuditEntry.seq <= head_seq)
            .order_by(AuditEntry.seq)
            .limit(VERIFY_BATCH)
        ).all()
        if not rows:
            break
        for row in rows:
            values = row._asdict()
            stored = values.pop("hash")
            if row.seq != last_seq + 1:
                return _broken(checked, last_seq + 1, f"entry {last_seq + 1} is missing")
            if row.prev_hash != last_hash:
                return _broken(checked, row.seq, "prev_hash does not match the previous entry")
            if entry_hash(**values) != stored:
                return _broken(checked, row.seq, "the entry's hash does not match its content")
            checked, last_seq, last_hash = checked + 1, row.seq, stored
    if last_seq < head_seq:
        return _broken(
            checked, last_seq + 1, f"entries {last_seq + 1} to {head_seq} are missing (head)"
        )
    if last_hash != head_hash:
        return _broken(checked, last_seq, "the head's hash does not match the last entry")
    # One statement, so one snapshot: entries past the head now (beyond concurrent appends).
    highest, now_head = db.session.execute(
        select(
            select(func.max(AuditEntry.seq)).scalar_subquery(),
            select(AuditHead.seq).where(AuditHead.id == HEAD_ID).scalar_subquery(),
        )
    ).one()
    if highest is not None and highest > (now_head or 0):
        return _broken(
            checked, (now_head or 0) + 1, "entries after the head's seq (head missing or reset)"
        )
    return {"ok": True, "checked": checked, "first_broken_seq": None, "reason": None}


def entries(principal, filters, page_args):
    """A page of entries by seq, for coordinators; filters: resource_type, resource_id, action,
    actor (exact) and since (entries at or after)."""
    principal.require_role("coordinator")
    query = select(AuditEntry)
    for name in ("resource_type", "resource_id", "action", "actor"):
        if filters.get(name) is not None:
            query = query.where(getattr(AuditEntry, name) == filters[name])
    if filters.get("since") is not None:
        query = query.where(AuditEntry.at >= filters["since"])
    return paginate(query, AuditEntry.seq, AuditEntry.seq, page_args)


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
