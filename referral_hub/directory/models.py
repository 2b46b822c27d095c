"""Organisations of the network (HSDS organization); services come with the directory issue."""

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..db_types import created_column, id_column, updated_column
from ..extensions import db

ORGANIZATION_STATUSES = ("active", "suspended", "retired")


class Organization(db.Model):
    __tablename__ = "organizations"

    id: Mapped[str] = id_column()
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    province: Mapped[str | None] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at = created_column()
    updated_at = updated_column()
