"""Migrations: one head, and upgrading an empty database to head gives exactly the models."""

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
