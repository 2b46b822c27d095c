"""The referral-hub command line prints JSON and the demo prepares a working hub."""

import json
import os
import subprocess
import sys

from click.testing import CliRunner
from flask.cli import ScriptInfo

from referral_hub.auth import service as auth_service
from referral_hub.auth.models import User
from referral_hub.cli import cli
from referral_hub.extensions import db


def run(app, *args, stdin=None):
    result = CliRunner().invoke(
        cli, list(args), input=stdin, obj=ScriptInfo(create_app=lambda: app)
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_create_org_user_and_client(app):
    organization = run(app, "create-org", "--name", "Mith Samlanh", "--province", "12")
    assert organization["name"] == "Mith Samlanh" and organization["province"] == "12"
    user = run(
        app,
        "create-user",
        "--org",
        organization["id"],
        "--email",
        "cw@example.org",
        "--role",
        "caseworker",
        "--password-stdin",
        stdin="a very long password\n",
    )
    assert user["roles"] == ["caseworker"]
    assert db.session.scalar(
        db.select(User).filter_by(email="cw@example.org")
    ).password_hash.startswith("$argon2id$")
    client = run(
        app,
        "create-client",
        "--org",
        organization["id"],
        "--scopes",
        "directory:read referrals:read",
    )
    assert client["client_secret"] and client["scopes"] == ["directory:read", "referrals:read"]


def test_a_user_created_without_a_password_gets_a_temporary_one_to_sign_in_with(app):
    organization = run(app, "create-org", "--name", "Mith Samlanh", "--province", "12")
    user = run(
        app,
        "create-user",
        *("--org", organization["id"], "--email", "new@example.org", "--role", "caseworker"),
    )
    password = user["temporary_password"]
    assert len(password) >= 12 and user["sign_in"].endswith("/login")
    assert user["then"].startswith("change it at ") and "/account/password" in user["then"]
    assert auth_service.sign_in("new@example.org", password, "127.0.0.1").id == user["id"]


def test_cli_errors_are_problems_and_exit_non_zero(app):
    result = CliRunner().invoke(
        cli,
        ["create-user", "--org", "no-such-org", "--email", "x@example.org", "--role", "caseworker"],
        obj=ScriptInfo(create_app=lambda: app),
    )
    assert result.exit_code == 1
    assert json.loads(result.stderr)["status"] == 404


def test_demo_no_serve_prepares_a_fresh_sqlite_hub(tmp_path):
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY", "HUB_ENV")
    }
    env["HUB_INSTANCE_PATH"] = str(tmp_path)
    command = [sys.executable, "-m", "referral_hub", "demo", "--no-serve"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["demo_data"] == "loaded"
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert json.loads(second.stdout)["demo_data"] == "already present"
    assert (tmp_path / "referral_hub.sqlite").exists()
