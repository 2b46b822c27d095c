"""The audit log: append-only, hash-chained entries and the one head row that orders them."""

from sqlalchemy import JSON, CheckConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..db_types import UTCDateTime
from ..extensions import db

GENESIS_HASH = "0" * 64


class AuditEntry(db.Model):
    """Who did what to which resource, when; never personal data.

    seq is given by the code from the head (1, 2, 3, ... without gaps), not by the database;
    hash is sha256 over the entry's canonical JSON including prev_hash, the previous entry's
    hash. The database refuses UPDATE and DELETE on this table (triggers, see the migration).
    """

    __tablename__ = "audit_entries"
    __table_args__ = (
        Index("ix_audit_entries_resource", "resource_type", "resource_id", "seq"),
        Index("ix_audit_entries_actor", "actor", "seq"),
        Index("ix_audit_entries_at", "at"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at = mapped_column(UTCDateTime(), nullable=False)
    actor: Mapped[str] = mapped_column(String(120))
    organization_id: Mapped[str | None] = mapped_column(String(36))
    action: Mapped[str] = mapped_column(String(60))
    resource_type: Mapped[str] = mapped_column(String(30))
    resource_id: Mapped[str | None] = mapped_column(String(36))
    details: Mapped[dict] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(db.Model):
    """The single row (id 1) naming the last entry: its seq and hash.

    Appenders lock it first (UPDATE ... seq = seq + 1), so they queue and the chain never forks;
    verify compares it with the last entry, so a deleted tail is found.
    """

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))
