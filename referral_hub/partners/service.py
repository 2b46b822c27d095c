"""Apply a partner's onboarding manifest: its organisation, its people and its API clients.

Applying the same manifest again creates nothing twice and shows no secret twice, so a
coordinator can re-run it after adding a contact. Callback subscriptions are listed for the
partner's admin to register: their signing secret must be shown to the partner only.
"""

import json
from pathlib import Path

import yaml
from marshmallow import ValidationError

from ..auth import service as auth_service
from ..auth.credentials import new_secret
from ..auth.models import OAuthClient, User
from ..directory import service as directory_service
from ..directory.models import Organization
from ..errors import InvalidInput, field_errors
from ..extensions import db
from .schemas import PartnerManifest


def _refuse(field, message):
    return InvalidInput(message, errors=[{"field": field, "message": message}])


def read_manifest(path):
    """The manifest at `path`, checked; its jwks files are read relative to it."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeError, yaml.YAMLError) as exc:
        raise _refuse("(file)", f"Cannot read the manifest: {exc}") from None
    try:
        manifest = PartnerManifest().load(document if isinstance(document, dict) else {})
    except ValidationError as exc:
        errors = field_errors(exc.normalized_messages())
        raise InvalidInput("The manifest has invalid fields.", errors=errors) from None
    for index, client in enumerate(manifest["api_clients"]):
        if "jwks_file" in client:
            client["jwks"] = _jwks(Path(path).parent / client.pop("jwks_file"), index)
    return manifest


def _jwks(path, index):
    try:
        keys = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _refuse(f"api_clients.{index}.jwks_file", f"Cannot read the keys: {exc}") from None
    if not isinstance(keys, dict) or not isinstance(keys.get("keys"), list):
        raise _refuse(f"api_clients.{index}.jwks_file", 'Not a JWK set ({"keys": [...]}).')
    return keys


def _organization(values):
    found = db.session.scalar(db.select(Organization).filter_by(name=values["name"].strip()))
    if found is not None:
        return found, False
    created = directory_service.create_organization(
        None, values["name"], values["description"], values.get("province")
    )
    return created, True


def _contact(organization, index, contact):
    email = contact["email"].strip().lower()
    found = db.session.scalar(db.select(User).filter_by(email=email))
    if found is not None and found.organization_id != organization.id:
        raise _refuse(f"contacts.{index}.email", "This email belongs to another organisation.")
    if found is not None:
        return {"email": email, "created": False}
    password = new_secret(12)
    auth_service.create_user(
        None, organization.id, email, [contact["role"]], name=contact["name"], password=password
    )
    return {"email": email, "created": True, "temporary_password": password}


def _client(organization, values):
    found = db.session.scalar(
        db.select(OAuthClient).filter_by(organization_id=organization.id, name=values["name"])
    )
    if found is not None:
        return {"name": found.name, "client_id": found.client_id, "created": False}
    client, secret = auth_service.create_client(
        None,
        organization.id,
        values["name"],
        values["scopes"],
        ["client_credentials"],
        values["auth_method"],
        jwks=values.get("jwks"),
    )
    report = {"name": client.name, "client_id": client.client_id, "created": True}
    if secret:
        report["client_secret"] = secret
    return report


def apply(manifest):
    """Create what the manifest names and the hub lacks; report it, with new secrets once."""
    organization, created = _organization(manifest["organization"])
    return {
        "organization": {"id": organization.id, "name": organization.name, "created": created},
        "users": [
            _contact(organization, index, contact)
            for index, contact in enumerate(manifest["contacts"])
        ],
        "api_clients": [_client(organization, client) for client in manifest["api_clients"]],
        "callbacks_for_the_partner_admin_to_register": manifest["callbacks"],
    }
