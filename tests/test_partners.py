"""Onboarding a partner from its manifest: checked, applied all or nothing, never twice."""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from flask.cli import ScriptInfo
from jsonschema import Draft202012Validator
from marshmallow import ValidationError

from referral_hub.auth.models import OAuthClient, User
from referral_hub.cli import cli
from referral_hub.directory.models import Organization
from referral_hub.extensions import db
from referral_hub.partners.schemas import PartnerManifest

from .factories import client_token, make_org, make_user

MANIFESTS = Path(__file__).resolve().parent.parent / "partners" / "manifests"
SCHEMA = json.loads(
    (
        Path(__file__).resolve().parent.parent / "schemas" / "partner-manifest.schema.json"
    ).read_text()
)


def apply(app, path):
    return CliRunner().invoke(
        cli, ["partners", "apply", str(path)], obj=ScriptInfo(create_app=lambda: app)
    )


def _example():
    return yaml.safe_load((MANIFESTS / "example.yaml").read_text())


def _write(tmp_path, manifest):
    shutil.copy(MANIFESTS / "example-ngo.jwks.json", tmp_path)
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return path


def test_the_example_manifest_is_valid_for_the_schema_and_the_hub():
    Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(
        _example()
    )
    PartnerManifest().load(_example())


BROKEN = [
    ("organization", None),
    ("contacts", []),
    ("contacts.0.role", "coordinator"),
    ("contacts.0.email", "not an email"),
    ("api_clients.0.scopes", ["everything"]),
    ("api_clients.0.colour", "blue"),
    ("organization.province", "99"),
    ("callbacks.0.event_types", ["referral.deleted"]),
]


def _broken(path, value):
    manifest = _example()
    *parents, last = path.split(".")
    target = manifest
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is None:
        del target[last]
    else:
        target[last] = value
    return manifest


@pytest.mark.parametrize(("path", "value"), BROKEN)
def test_a_broken_manifest_is_refused_by_the_schema_and_the_hub(path, value):
    manifest = _broken(path, value)
    validator = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
    assert list(validator.iter_errors(manifest))
    with pytest.raises(ValidationError):
        PartnerManifest().load(manifest)


def test_applying_creates_the_partner_once_and_shows_secrets_once(app, client, tmp_path):
    manifest = _example()
    manifest["api_clients"].append(
        {
            "name": "Reports export",
            "scopes": ["directory:read"],
            "auth_method": "client_secret_basic",
        }
    )
    path = _write(tmp_path, manifest)
    first = apply(app, path)
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["organization"]["created"] is True
    [admin] = report["users"]
    assert admin["created"] and len(admin["temporary_password"]) >= 16
    user = db.session.scalar(db.select(User).filter_by(email=admin["email"]))
    assert user.roles == ["org_admin"] and user.organization_id == report["organization"]["id"]
    keys_client, secret_client = report["api_clients"]
    assert "client_secret" not in keys_client
    stored = db.session.scalar(db.select(OAuthClient).filter_by(client_id=keys_client["client_id"]))
    assert stored.auth_method == "private_key_jwt" and stored.jwks["keys"][0]["kid"]
    token = client_token(
        client, secret_client["client_id"], secret_client["client_secret"], "directory:read"
    )
    assert token
    assert report["callbacks_for_the_partner_admin_to_register"][0]["url"].startswith("https://")

    again = json.loads(apply(app, path).stdout)
    assert again["organization"] == {**report["organization"], "created": False}
    assert not any(u["created"] for u in again["users"])
    assert not any(c["created"] for c in again["api_clients"])
    assert "temporary_password" not in json.dumps(again) and "client_secret" not in json.dumps(
        again
    )
    assert db.session.query(OAuthClient).count() == 2


def test_a_refused_manifest_writes_nothing_and_names_the_field(app, tmp_path):
    manifest = _example()
    manifest["api_clients"][0]["jwks_file"] = "missing.json"
    result = apply(app, _write(tmp_path, manifest))
    assert result.exit_code == 1
    problem = json.loads(result.stderr)
    assert problem["errors"][0]["field"] == "api_clients.0.jwks_file"
    assert db.session.query(Organization).count() == 0


def test_a_contact_of_another_organisation_is_refused_and_nothing_is_kept(app, tmp_path):
    make_user(make_org("Another NGO"), email="programme@example-ngo.example.org")
    result = apply(app, _write(tmp_path, _example()))
    assert result.exit_code == 1
    assert json.loads(result.stderr)["errors"][0]["field"] == "contacts.0.email"
    assert (
        db.session.scalar(db.select(Organization).filter_by(name="Example Child Protection NGO"))
        is None
    )
