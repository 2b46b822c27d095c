"""Liveness, readiness and the published API contract."""

from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Blueprint, current_app, jsonify, redirect, send_file, url_for
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .extensions import db

PROJECT_ROOT = Path(__file__).resolve().parent.parent
OPENAPI_FILE = PROJECT_ROOT / "openapi.yaml"
MIGRATIONS_DIR = PROJECT_ROOT / "migrations"

bp = Blueprint("health", __name__)


@bp.get("/")
def index():
    return redirect(url_for("referral_pages.home"))


@bp.get("/healthz")
def healthz():
    return {"status": "ok"}


def schema_heads():
    config = current_app.extensions["migrate"].migrate.get_config()
    return set(ScriptDirectory.from_config(config).get_heads())


@bp.get("/readyz")
def readyz():
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            current = set(MigrationContext.configure(connection).get_current_heads())
    except SQLAlchemyError:
        return jsonify(status="unavailable", database="unreachable"), 503
    expected = schema_heads()
    if current != expected:
        body = {
            "status": "unavailable",
            "database": "ok",
            "schema": "behind",
            "current": sorted(current),
            "expected": sorted(expected),
        }
        return jsonify(body), 503
    return {"status": "ok", "database": "ok", "schema": "current"}


@bp.get("/openapi.yaml")
def openapi():
    return send_file(OPENAPI_FILE, mimetype="application/yaml", max_age=300)
