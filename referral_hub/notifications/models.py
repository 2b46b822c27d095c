"""Notifications to people: the outbox of messages, their attempts, each person's choices and
addresses (an e-mail address that keeps failing pauses; a Telegram chat linked by a code)."""

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db_types import UTCDateTime, created_column, id_column
from ..extensions import db

CHANNELS = ("email", "telegram")
CHOICES = ("immediate", "digest", "off")
MESSAGE_STATES = ("pending", "sent", "failed")

# What a person can hear of, and how they hear of it unless they or their admin chose otherwise.
KINDS = {
    "referral_new": "digest",  # emergencies are always immediate
    "referral_answered": "immediate",
    "deadline_half": "immediate",
    "deadline_passed": "immediate",
    "consent_withdrawn": "immediate",
    "service_unverified": "digest",
    "subscription_disabled": "immediate",
}


class Notification(db.Model):
    """One message to one person over one channel; its id is the e-mail's Message-ID, the same
    on every retry, so a repeat after a crash can be recognised."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_due", "status", "next_attempt_at"),
        Index("ix_notifications_user", "user_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    organization_id: Mapped[str] = mapped_column(String(36), index=True)  # the user's
    channel: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(40))
    referral_id: Mapped[str | None] = mapped_column(String(36))
    # Facts the message shows: references, states, times, never the child's personal data.
    facts: Mapped[dict] = mapped_column(JSON)
    digest: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A digest's messages share the Message-ID of the one message that carries them.
    message_id: Mapped[str | None] = mapped_column(String(80))
    subject: Mapped[str | None] = mapped_column(String(300))  # as last sent
    created_at = created_column()
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    attempt_log: Mapped[list["NotificationAttempt"]] = relationship(
        cascade="all, delete-orphan", order_by="NotificationAttempt.id"
    )


class NotificationAttempt(db.Model):
    __tablename__ = "notification_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    notification_id: Mapped[str] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE"), index=True
    )
    at = created_column()
    succeeded: Mapped[bool] = mapped_column(default=False)
    error: Mapped[str | None] = mapped_column(String(200))
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)


class NotificationChoice(db.Model):
    """How a person (user_id) or, by default, an organisation's people (organization_id) hear
    of one kind of event: immediately, in the morning digest, or not at all."""

    __tablename__ = "notification_choices"
    __table_args__ = (
        UniqueConstraint("user_id", "kind"),
        UniqueConstraint("organization_id", "kind"),
    )

    id: Mapped[str] = id_column()
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    organization_id: Mapped[str | None] = mapped_column(ForeignKey("organizations.id"))
    kind: Mapped[str] = mapped_column(String(40))
    choice: Mapped[str] = mapped_column(String(20))


class NotificationAddress(db.Model):
    """Where a person's messages of one channel go, and whether that has paused after repeated
    failures. A Telegram chat is linked by a one-time code the person sends to the bot."""

    __tablename__ = "notification_addresses"
    __table_args__ = (UniqueConstraint("user_id", "channel"),)

    id: Mapped[str] = id_column()
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(20))
    address: Mapped[str | None] = mapped_column(String(254))  # e-mail, or Telegram chat id
    failures: Mapped[int] = mapped_column(Integer, default=0)  # in a row
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    link_code_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    link_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at = created_column()


class DeadlineReminder(db.Model):
    """When the receivers of a referral are told that half their time to answer is gone;
    written with the referral, done once (or dropped when the referral is answered first)."""

    __tablename__ = "deadline_reminders"

    referral_id: Mapped[str] = mapped_column(
        ForeignKey("referrals.id", ondelete="CASCADE"), primary_key=True
    )
    remind_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
