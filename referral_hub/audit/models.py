"""The audit log: entries recorded by requests, sealed into an append-only hash chain by the
sequencer, and the one head row that names the chain's last entry."""

from sqlalchemy import JSON, BigInteger, CheckConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..db_types import UTCDateTime
from ..extensions import db

GENESIS_HASH = "0" * 64


class Recorded:
    """What a request records of an event, pending or sealed."""

    at = mapped_column(UTCDateTime(), nullable=False)
    actor: Mapped[str] = mapped_column(String(120))
    organization_id: Mapped[str | None] = mapped_column(String(36))
    action: Mapped[str] = mapped_column(String(60))
    resource_type: Mapped[str] = mapped_column(String(30))
    resource_id: Mapped[str | None] = mapped_column(String(36))
    details: Mapped[dict] = mapped_column(JSON)


class AuditEntry(Recorded, db.Model):
    """A sealed entry: who did what to which resource, when; never personal data.

    seq is given by the sequencer from the head (1, 2, 3, ... without gaps), not by the
    database; hash is sha256 over the entry's canonical JSON including prev_hash, the previous
    entry's hash. sealed_at (outside the hash) is when the sequencer chained it; `at` is when it
    was recorded. The database refuses UPDATE and DELETE on this table (triggers, see the
    migrations).
    """

    __tablename__ = "audit_entries"
    __table_args__ = (
        Index("ix_audit_entries_resource", "resource_type", "resource_id", "seq"),
        Index("ix_audit_entries_actor", "actor", "seq"),
        Index("ix_audit_entries_at", "at"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    sealed_at = mapped_column(UTCDateTime())  # null for entries sealed before the sequencer


class PendingAuditEntry(Recorded, db.Model):
    """An entry a request recorded and the sequencer has not sealed yet.

    Requests only INSERT here, so they never wait for each other; the sequencer moves these
    into audit_entries in the order of id, within AUDIT_SEAL_DELAY_SECONDS.
    """

    __tablename__ = "audit_pending"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )


class AuditHead(db.Model):
    """The single row (id 1) naming the last sealed entry: its seq and hash.

    The sequencer locks it first, so one seals at a time across processes and the chain never
    forks; verify compares it with the last entry, so a deleted tail is found.
    """

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))
