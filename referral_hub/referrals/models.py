"""A referral of one child or caregiver from one organisation to a service of another."""

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db_types import UTCDateTime, created_column, id_column, updated_column
from ..extensions import db

URGENCIES = ("emergency", "high", "normal")
STATUSES = (
    "sent",
    "received",
    "accepted",
    "declined",
    "in_progress",
    "completed",
    "withdrawn",
    "expired",
)
OPEN_STATUSES = ("sent", "received", "accepted", "in_progress")
UNANSWERED_STATUSES = ("sent", "received")
PERSONAL_CATEGORIES = ("identity", "contact", "health", "case_history")
CONSENT_GIVERS = ("subject", "parent", "guardian", "best_interests")
CONSENT_METHODS = ("verbal", "written", "thumbprint", "electronic")
CONSENT_STATES = ("active", "withdrawn", "expired")
DECLINE_REASONS = ("no_capacity", "not_eligible", "out_of_area", "could_not_contact", "other")
OUTCOMES = (
    "service_provided",
    "partially_provided",
    "no_longer_needed",
    "could_not_contact",
    "referred_elsewhere",
)
FHIR_TASK_STATUS = {
    "sent": "requested",
    "received": "received",
    "accepted": "accepted",
    "declined": "rejected",
    "in_progress": "in-progress",
    "completed": "completed",
    "withdrawn": "cancelled",
    "expired": "failed",
}


class Referral(db.Model):
    __tablename__ = "referrals"
    __table_args__ = (
        UniqueConstraint("sender_organization_id", "idempotency_key"),
        Index("ix_referrals_receiver", "receiver_organization_id", "created_at", "id"),
        Index("ix_referrals_sender", "sender_organization_id", "created_at", "id"),
        Index("ix_referrals_open_deadline", "status", "deadline_at"),
    )

    id: Mapped[str] = id_column()
    # What people quote on the phone: the sender's short code, the year, a count (MT-26-0042).
    reference: Mapped[str | None] = mapped_column(String(20), unique=True)
    version: Mapped[int] = mapped_column(Integer)
    # SQLAlchemy adds "AND version = <loaded>" to every UPDATE: of two concurrent changes, one wins.
    __mapper_args__ = {"version_id_col": version}
    status: Mapped[str] = mapped_column(String(20), default="sent")
    urgency: Mapped[str] = mapped_column(String(20))
    needs: Mapped[list] = mapped_column(JSON, default=list)
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id"), index=True)
    sender_organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    receiver_organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    created_by: Mapped[str] = mapped_column(String(120))
    # The receiving organisation's caseworker who holds it, once assigned.
    assigned_to_user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), index=True)

    # Non-identifying facts: every party entitled to the referral may see them.
    subject_sex: Mapped[str | None] = mapped_column(String(10))
    subject_birth_year: Mapped[int | None] = mapped_column(Integer)
    subject_age: Mapped[int | None] = mapped_column(Integer)
    subject_province: Mapped[str | None] = mapped_column(String(2), index=True)
    subject_district: Mapped[str | None] = mapped_column(String(4))

    # Personal data, one AES-GCM envelope per category (see crypto.py); None when not sent.
    identity_data: Mapped[str | None] = mapped_column(Text)
    contact_data: Mapped[str | None] = mapped_column(Text)
    health_data: Mapped[str | None] = mapped_column(Text)
    case_history_data: Mapped[str | None] = mapped_column(Text)
    eligibility_override_data: Mapped[str | None] = mapped_column(Text)

    consent_given_by: Mapped[str] = mapped_column(String(20))
    consent_method: Mapped[str] = mapped_column(String(20))
    consent_obtained_at: Mapped[datetime] = mapped_column(UTCDateTime())
    consent_categories: Mapped[list] = mapped_column(JSON, default=list)
    consent_share_identity_with_government: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    consent_justification_data: Mapped[str | None] = mapped_column(Text)
    consent_status: Mapped[str] = mapped_column(String(20), default="active")
    consent_withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    decline_reason: Mapped[str | None] = mapped_column(String(30))
    suggested_service_id: Mapped[str | None] = mapped_column(String(36))
    outcome: Mapped[str | None] = mapped_column(String(30))

    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime())
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    # Across networks. Sent here: the peer hub it is forwarded to, its id there, and how the
    # forwarding stands. Received from a peer hub: that peer, and who referred at its end.
    peer_id: Mapped[str | None] = mapped_column(ForeignKey("peers.id"), index=True)
    remote_referral_id: Mapped[str | None] = mapped_column(String(36))
    forwarding: Mapped[str | None] = mapped_column(String(20))
    forwarded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    remote_events_seen: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    referrer: Mapped[dict | None] = mapped_column(JSON)
    peer = relationship("Peer")
    forwards = relationship("Forward", order_by="Forward.id", viewonly=True)

    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_digest: Mapped[str | None] = mapped_column(String(64))
    created_at = created_column()
    updated_at = updated_column()

    @property
    def categories_sent(self):
        return [c for c in PERSONAL_CATEGORIES if getattr(self, data_attribute(c)) is not None]


def data_attribute(category):
    """The column holding a personal data category's envelope."""
    return f"{category}_data"


class ReferralEvent(db.Model):
    """One step of a referral's timeline; also what status callbacks are made from."""

    __tablename__ = "referral_events"
    __table_args__ = (Index("ix_referral_events_referral", "referral_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(40))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(120))
    organization_id: Mapped[str | None] = mapped_column(String(36))
    reason: Mapped[str | None] = mapped_column(String(500))
    outcome: Mapped[str | None] = mapped_column(String(30))
    at = created_column()


class Escalation(db.Model):
    """An overdue referral put before the network's coordinators."""

    __tablename__ = "escalations"

    id: Mapped[str] = id_column()
    referral_id: Mapped[str] = mapped_column(
        ForeignKey("referrals.id", ondelete="CASCADE"), index=True
    )
    reason: Mapped[str] = mapped_column(String(30), default="overdue")
    created_at = created_column()
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ReferralDraft(db.Model):
    """A referral form saved before sending, to resume later. Only its author reads it; every
    part is encrypted like a referral's personal data (see drafts.py)."""

    __tablename__ = "referral_drafts"
    __table_args__ = (Index("ix_referral_drafts_author", "user_id", "created_at"),)

    id: Mapped[str] = id_column()
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    step: Mapped[str] = mapped_column(String(10))
    # One AES-GCM envelope per part: the facts, the consent, then each personal category.
    facts_data: Mapped[str | None] = mapped_column(Text)
    consent_data: Mapped[str | None] = mapped_column(Text)
    identity_data: Mapped[str | None] = mapped_column(Text)
    contact_data: Mapped[str | None] = mapped_column(Text)
    health_data: Mapped[str | None] = mapped_column(Text)
    case_history_data: Mapped[str | None] = mapped_column(Text)
    created_at = created_column()
    updated_at = updated_column()
