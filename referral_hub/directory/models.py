"""The network's directory, shaped after Open Referral HSDS 3.0, with the network's extras."""

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db_types import UTCDateTime, created_column, id_column, updated_column
from ..extensions import db

ORGANIZATION_STATUSES = ("active", "suspended", "retired")
PEER_STAND_IN = "peer"  # the status of a peer hub's stand-in: never active, in no list
SERVICE_STATUSES = ("active", "inactive", "defunct", "temporarily closed")
CAPACITY_STATUSES = ("available", "waitlist", "full", "assessment_required")
SEXES = ("female", "male")


class Organization(db.Model):
    __tablename__ = "organizations"
    __table_args__ = (
        # Names are unique in this network; a peer hub's organisations may share them.
        Index(
            "uq_organizations_local_name",
            "name",
            unique=True,
            sqlite_where=text("peer_id IS NULL"),
            postgresql_where=text("peer_id IS NULL"),
        ),
    )

    id: Mapped[str] = id_column()
    name: Mapped[str] = mapped_column(String(200))
    alternate_name: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    # In Khmer, for the Khmer pages; until written, they show the English marked as English.
    name_km: Mapped[str | None] = mapped_column(String(200))
    description_km: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(String(254))
    website: Mapped[str | None] = mapped_column(String(500))
    province: Mapped[str | None] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(20), default="active")
    sources: Mapped[list] = mapped_column(JSON, default=list)
    last_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_verified_by: Mapped[str | None] = mapped_column(String(120))
    # A peer hub's: mirrored from its directory (or, status "peer", the peer's stand-in).
    peer_id: Mapped[str | None] = mapped_column(ForeignKey("peers.id"), index=True)
    # What its referrals' references start with (MT-26-0042), and their counter this year.
    short_code: Mapped[str | None] = mapped_column(String(8), unique=True)
    reference_year: Mapped[int | None] = mapped_column(Integer)
    reference_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at = created_column()
    updated_at = updated_column()

    services: Mapped[list["Service"]] = relationship(back_populates="organization")
    locations: Mapped[list["Location"]] = relationship(back_populates="organization")
    phones: Mapped[list["Phone"]] = relationship(
        primaryjoin="and_(Phone.organization_id == Organization.id, Phone.service_id.is_(None))",
        viewonly=True,
    )


class Service(db.Model):
    __tablename__ = "services"
    __table_args__ = (
        UniqueConstraint("organization_id", "name"),
        Index("ix_services_status_name", "status", "name", "id"),
        Index("ix_services_coordinates", "latitude", "longitude"),  # near: the box first
    )

    id: Mapped[str] = id_column()
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    alternate_name: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    # In Khmer, for the Khmer pages; until written, they show the English marked as English.
    name_km: Mapped[str | None] = mapped_column(String(200))
    description_km: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(String(500))
    email: Mapped[str | None] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(20), default="active")
    application_process: Mapped[str | None] = mapped_column(Text)
    fees_description: Mapped[str | None] = mapped_column(Text)
    eligibility_description: Mapped[str | None] = mapped_column(Text)
    minimum_age: Mapped[int | None] = mapped_column(Integer)
    maximum_age: Mapped[int | None] = mapped_column(Integer)
    eligibility_sex: Mapped[str | None] = mapped_column(String(10))
    accepting_referrals: Mapped[bool] = mapped_column(Boolean, default=True)
    capacity_status: Mapped[str] = mapped_column(String(30), default="available")
    places_free: Mapped[int | None] = mapped_column(Integer)
    capacity_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    capacity_updated_by: Mapped[str | None] = mapped_column(String(120))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    search_text: Mapped[str] = mapped_column(Text, default="")
    sources: Mapped[list] = mapped_column(JSON, default=list)
    last_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_verified_by: Mapped[str | None] = mapped_column(String(120))
    # A peer hub's service, mirrored: edited there only; the digest of what the peer last sent.
    peer_id: Mapped[str | None] = mapped_column(ForeignKey("peers.id"), index=True)
    peer_digest: Mapped[str | None] = mapped_column(String(64))
    created_at = created_column()
    updated_at = updated_column()

    organization: Mapped[Organization] = relationship(back_populates="services", lazy="joined")
    categories: Mapped[list["ServiceCategory"]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="ServiceCategory.code"
    )
    areas: Mapped[list["ServiceArea"]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="ServiceArea.area_code"
    )
    languages: Mapped[list["ServiceLanguage"]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="ServiceLanguage.code"
    )
    phones: Mapped[list["Phone"]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="Phone.number"
    )
    locations: Mapped[list["Location"]] = relationship(
        secondary="service_at_locations", lazy="selectin", order_by="Location.name"
    )
    contacts: Mapped[list["Contact"]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="Contact.name"
    )
    schedules: Mapped[list["Schedule"]] = relationship(
        cascade="all, delete-orphan",
        lazy="selectin",
        order_by="(Schedule.byday, Schedule.opens_at)",
    )

    @property
    def eligibility(self):
        """Who the service is for, shaped as in the service's document."""
        return {
            "minimum_age": self.minimum_age,
            "maximum_age": self.maximum_age,
            "sex": self.eligibility_sex,
            "description": self.eligibility_description,
        }

    @property
    def category_codes(self):
        return [link.code for link in self.categories]

    @property
    def area_codes(self):
        return [link.area_code for link in self.areas]

    @property
    def language_codes(self):
        return [link.code for link in self.languages]


class ServiceCategory(db.Model):
    """A service's place in the network's taxonomy (an HSDS attribute)."""

    __tablename__ = "service_categories"
    __table_args__ = (Index("ix_service_categories_code_service", "code", "service_id"),)

    service_id: Mapped[str] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[str] = mapped_column(String(60), primary_key=True)


class ServiceArea(db.Model):
    """An area a service covers: a province (2 digits) or a district (4 digits)."""

    __tablename__ = "service_areas"
    __table_args__ = (Index("ix_service_areas_code_service", "area_code", "service_id"),)

    service_id: Mapped[str] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), primary_key=True
    )
    area_code: Mapped[str] = mapped_column(String(10), primary_key=True)


class ServiceLanguage(db.Model):
    __tablename__ = "service_languages"
    __table_args__ = (Index("ix_service_languages_code_service", "code", "service_id"),)

    service_id: Mapped[str] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[str] = mapped_column(String(10), primary_key=True)


class Phone(db.Model):
    __tablename__ = "phones"

    id: Mapped[str] = id_column()
    organization_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    service_id: Mapped[str | None] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[str] = mapped_column(String(60))
    type: Mapped[str | None] = mapped_column(String(20))
    description: Mapped[str | None] = mapped_column(Text)


class Contact(db.Model):
    """A named person or desk to ask for about a service."""

    __tablename__ = "contacts"

    id: Mapped[str] = id_column()
    service_id: Mapped[str] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    title: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(60))


class Schedule(db.Model):
    """When a service is open, as HSDS (iCalendar-like) weekly rules."""

    __tablename__ = "schedules"

    id: Mapped[str] = id_column()
    service_id: Mapped[str] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    freq: Mapped[str] = mapped_column(String(10), default="WEEKLY")
    byday: Mapped[str] = mapped_column(String(40))
    opens_at: Mapped[str | None] = mapped_column(String(5))
    closes_at: Mapped[str | None] = mapped_column(String(5))
    description: Mapped[str | None] = mapped_column(Text)


class Location(db.Model):
    """A place; a confidential one (a safe house) never shows its address to the public."""

    __tablename__ = "locations"

    id: Mapped[str] = id_column()
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    province: Mapped[str | None] = mapped_column(String(2))
    district: Mapped[str | None] = mapped_column(String(4))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    confidential: Mapped[bool] = mapped_column(Boolean, default=False)

    organization: Mapped[Organization] = relationship(back_populates="locations")


class ServiceAtLocation(db.Model):
    __tablename__ = "service_at_locations"

    service_id: Mapped[str] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), primary_key=True
    )
    location_id: Mapped[str] = mapped_column(
        ForeignKey("locations.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class DirectoryChange(db.Model):
    """One changed field of a directory record: who, when, old and new (HSDS metadata)."""

    __tablename__ = "directory_changes"
    __table_args__ = (Index("ix_directory_changes_resource", "resource_type", "resource_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resource_type: Mapped[str] = mapped_column(String(20))
    resource_id: Mapped[str] = mapped_column(String(36))
    action: Mapped[str] = mapped_column(String(20))
    field_name: Mapped[str] = mapped_column(String(60))
    previous_value: Mapped[str | None] = mapped_column(Text)
    replacement_value: Mapped[str | None] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(120))
    organization_id: Mapped[str | None] = mapped_column(String(36))
    changed_at = created_column()


class VerificationReminder(db.Model):
    """A coordinator's to-do: this service has not been verified for too long."""

    __tablename__ = "verification_reminders"

    id: Mapped[str] = id_column()
    service_id: Mapped[str] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    last_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at = created_column()
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
