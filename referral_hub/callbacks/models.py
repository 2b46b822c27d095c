"""Subscriptions to status callbacks, and the outbox of deliveries made from referral events."""

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db_types import UTCDateTime, created_column, id_column
from ..extensions import db

EVENT_TYPES = ("referral.created", "referral.status_changed", "referral.consent_withdrawn")
SUBSCRIPTION_STATES = ("active", "paused", "disabled")
DELIVERY_STATES = ("pending", "delivered", "failed")


class Subscription(db.Model):
    __tablename__ = "subscriptions"

    id: Mapped[str] = id_column()
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    event_types: Mapped[list] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="active")
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    # Signing secrets, encrypted like personal data; the previous one signs too until it lapses.
    secret_data: Mapped[str] = mapped_column(Text)
    previous_secret_data: Mapped[str | None] = mapped_column(Text)
    previous_secret_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The partner's own OAuth (client credentials) protecting its callback endpoint.
    oauth_token_url: Mapped[str | None] = mapped_column(String(2000))
    oauth_client_id: Mapped[str | None] = mapped_column(String(200))
    oauth_client_secret_data: Mapped[str | None] = mapped_column(Text)
    oauth_scope: Mapped[str | None] = mapped_column(String(500))
    created_at = created_column()
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Delivery(db.Model):
    """One event for one subscription; its id is the webhook-id, the same on every retry."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        Index("ix_deliveries_order", "subscription_id", "referral_id", "event_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"))
    referral_id: Mapped[str] = mapped_column(String(36))
    event_id: Mapped[int] = mapped_column(Integer)
    event_type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at = created_column()
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    subscription: Mapped[Subscription] = relationship()
    attempt_log: Mapped[list["DeliveryAttempt"]] = relationship(
        cascade="all, delete-orphan", order_by="DeliveryAttempt.id"
    )


class DeliveryAttempt(db.Model):
    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    at = created_column()
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(200))
    duration_ms: Mapped[int] = mapped_column(Integer)
    response_excerpt: Mapped[str | None] = mapped_column(String(200))
