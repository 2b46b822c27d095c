"""Admin API for an organisation's users and API clients."""

from flask import Blueprint, request

from ..extensions import db
from ..pagination import PageArgs
from ..request_handling import json_body
from . import service
from .principal import protected
from .schemas import ClientCreate, ClientUpdate, ClientView, UserCreate, UserUpdate, UserView

bp = Blueprint("auth_api", __name__, url_prefix="/api/v1/organizations/<uuid:organization_id>")


@bp.get("/users")
@protected("admin")
def list_users(organization_id, principal):
    users, next_cursor = service.list_users(
        principal, str(organization_id), PageArgs().load(request.args)
    )
    return {"items": UserView(many=True).dump(users), "next_cursor": next_cursor}


@bp.post("/users")
@protected("admin")
def create_user(organization_id, principal):
    data = json_body(UserCreate())
    user = service.create_user(principal, str(organization_id), **data)
    db.session.commit()
    return UserView().dump(user), 201


@bp.patch("/users/<uuid:user_id>")
@protected("admin")
def update_user(organization_id, user_id, principal):
    changes = json_body(UserUpdate())
    user = service.update_user(principal, str(organization_id), str(user_id), changes)
    db.session.commit()
    return UserView().dump(user)


@bp.get("/clients")
@protected("admin")
def list_clients(organization_id, principal):
    clients, next_cursor = service.list_clients(
        principal, str(organization_id), PageArgs().load(request.args)
    )
    return {"items": ClientView(many=True).dump(clients), "next_cursor": next_cursor}


@bp.post("/clients")
@protected("admin")
def create_client(organization_id, principal):
    data = json_body(ClientCreate())
    client, secret = service.create_client(principal, str(organization_id), **data)
    db.session.commit()
    body = ClientView().dump(client)
    if secret:
        body["client_secret"] = secret
    return body, 201, {"Cache-Control": "no-store"}


@bp.patch("/clients/<client_id>")
@protected("admin")
def update_client(organization_id, client_id, principal):
    changes = json_body(ClientUpdate())
    client = service.update_client(principal, str(organization_id), client_id, changes)
    db.session.commit()
    return ClientView().dump(client)
