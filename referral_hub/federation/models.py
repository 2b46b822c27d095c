"""Peer hubs, the outbox of what is forwarded to them, and the callbacks received from them."""

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db_types import UTCDateTime, created_column, id_column
from ..extensions import db

PEER_STATES = ("active", "paused", "removed")
FORWARD_ACTIONS = ("create", "withdraw", "consent_withdraw", "erase")
FORWARD_STATES = ("pending", "done", "refused", "failed")


class Peer(db.Model):
    """Another network's hub. Invited: it holds a client here and acts through a stand-in
    organisation. Added: this hub syncs its directory and forwards referrals to it. One record
    may be both; the two directions are independent."""

    __tablename__ = "peers"

    id: Mapped[str] = id_column()
    name: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at = created_column()
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    # Invited: the organisation its client acts as (never one of the network's organisations).
    # No foreign key: organisations name their peer, and the two tables must not form a cycle.
    organization_id: Mapped[str | None] = mapped_column(String(36), unique=True)
    trusted_with_confidential: Mapped[bool] = mapped_column(Boolean, default=False)

    # Added: where it is, this hub's credentials there, and the secret its callbacks carry.
    url: Mapped[str | None] = mapped_column(String(2000))
    remote_client_id: Mapped[str | None] = mapped_column(String(200))
    remote_client_secret_data: Mapped[str | None] = mapped_column(Text)
    remote_subscription_id: Mapped[str | None] = mapped_column(String(36))
    callback_secret_data: Mapped[str | None] = mapped_column(Text)

    # Directory sync.
    sync_watermark: Mapped[str | None] = mapped_column(String(40))  # the peer's last_modified
    last_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_sync_outcome: Mapped[dict | None] = mapped_column(JSON)
    sync_failures: Mapped[int] = mapped_column(Integer, default=0)
    next_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def added(self):
        return self.url is not None

    @property
    def invited(self):
        return self.organization_id is not None


class Forward(db.Model):
    """One step of a referral to carry to the peer hub, in order, until the peer confirms it."""

    __tablename__ = "forwards"
    __table_args__ = (
        Index("ix_forwards_due", "status", "next_attempt_at"),
        Index("ix_forwards_referral", "referral_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id", ondelete="CASCADE"))
    peer_id: Mapped[str] = mapped_column(ForeignKey("peers.id"), index=True)
    action: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(String(300))  # kept once done: why it waited
    created_at = created_column()
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ReceivedCallback(db.Model):
    """A peer's callback, by its webhook-id: a replay of it is refused."""

    __tablename__ = "received_callbacks"
    __table_args__ = (UniqueConstraint("peer_id", "webhook_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    peer_id: Mapped[str] = mapped_column(ForeignKey("peers.id", ondelete="CASCADE"))
    webhook_id: Mapped[str] = mapped_column(String(100))
    received_at = created_column()
