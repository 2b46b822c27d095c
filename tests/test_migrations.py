"""Migrations: one head, and upgrading an empty database to head gives exactly the models."""

import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import upgrade

from referral_hub import create_app
from referral_hub.db_types import include_in_autogenerate
from referral_hub.extensions import db

from .conftest import hub_config


def test_there_is_one_alembic_head(app):
    config = app.extensions["migrate"].migrate.get_config()
    assert len(ScriptDirectory.from_config(config).get_heads()) == 1


@pytest.fixture
def empty_database_url(database_url, tmp_path):
    """A new, empty database on the same server as the test database."""
    if not database_url.startswith("postgresql"):
        yield f"sqlite:///{tmp_path}/migrations.sqlite"
        return
    name = f"hub_migrations_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.engine.make_url(database_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def test_upgrade_from_empty_to_head_matches_the_models(empty_database_url, live_port):
    hub = create_app(hub_config(empty_database_url, live_port))
    with hub.app_context():
        upgrade()
        with db.engine.connect() as connection:
            options = {"compare_type": True, "include_object": include_in_autogenerate}
            context = MigrationContext.configure(connection, opts=options)
            differences = compare_metadata(context, db.metadata)
        db.engine.dispose()
    assert differences == []
