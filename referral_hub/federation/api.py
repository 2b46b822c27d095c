"""Peers API for coordinators, and the endpoint where peer hubs' status callbacks arrive."""

from datetime import datetime

from flask import Blueprint, request
from marshmallow import Schema, fields, validate

from ..auth.principal import actor, protected
from ..extensions import db
from ..request_handling import json_body
from . import callbacks, peering, sync

bp = Blueprint("peers_api", __name__, url_prefix="/api/v1/peers")
callbacks_bp = Blueprint("federation_callbacks", __name__, url_prefix="/federation")
NO_STORE = {"Cache-Control": "no-store"}
Name = fields.String(required=True, validate=validate.Length(min=1, max=200))


class Invitation(Schema):
    name = Name


class PeerAdd(Schema):
    name = Name
    url = fields.String(required=True, validate=validate.Length(min=8, max=2000))
    client_id = fields.String(required=True, validate=validate.Length(min=1, max=200))
    client_secret = fields.String(required=True, validate=validate.Length(min=1, max=500))


class Trust(Schema):
    confidential = fields.Boolean(required=True)


def _coordinator(principal):
    principal.require_role("coordinator")
    return actor(principal)


def _as_json(summary):
    """Times as ISO 8601, as everywhere in the API."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in summary.items()}


def _one(peer):
    return _as_json(next(s for s in peering.summaries() if s["id"] == peer.id))


@bp.get("")
@protected("admin")
def list_peers(principal):
    _coordinator(principal)
    return {"items": [_as_json(s) for s in peering.summaries()], "next_cursor": None}


@bp.post("/invitations")
@protected("admin")
def invite(principal):
    by = _coordinator(principal)
    invitation = peering.invite(by, **json_body(Invitation()))
    db.session.commit()
    return invitation, 201, NO_STORE


@bp.post("")
@protected("admin")
def add(principal):
    by = _coordinator(principal)
    values = json_body(PeerAdd())
    peer = peering.add(
        by, values["name"], values["url"], values["client_id"], values["client_secret"]
    )
    db.session.commit()
    return _one(peer), 201


@bp.get("/<uuid:peer_id>")
@protected("admin")
def get_peer(peer_id, principal):
    _coordinator(principal)
    return _one(peering.find(str(peer_id)))


@bp.post("/<uuid:peer_id>/sync")
@protected("admin")
def sync_peer(peer_id, principal):
    _coordinator(principal)
    peer = peering.find(str(peer_id))
    if not peer.added or peer.status != "active":
        return _one(peer), 409
    sync.sync(peer.id)
    return _one(peer)


def _set(peer_id, principal, status):
    peer = peering.set_status(_coordinator(principal), str(peer_id), status)
    db.session.commit()
    return _one(peer)


@bp.post("/<uuid:peer_id>/pause")
@protected("admin")
def pause(peer_id, principal):
    return _set(peer_id, principal, "paused")


@bp.post("/<uuid:peer_id>/resume")
@protected("admin")
def resume(peer_id, principal):
    return _set(peer_id, principal, "active")


@bp.post("/<uuid:peer_id>/trust")
@protected("admin")
def trust(peer_id, principal):
    confidential = json_body(Trust())["confidential"]
    peer = peering.set_trusted(_coordinator(principal), str(peer_id), confidential)
    db.session.commit()
    return _one(peer)


@bp.delete("/<uuid:peer_id>")
@protected("admin")
def remove(peer_id, principal):
    peering.remove(_coordinator(principal), str(peer_id))
    db.session.commit()
    return "", 204


@callbacks_bp.post("/callbacks/<uuid:peer_id>")
def receive_callback(peer_id):
    callbacks.receive(
        str(peer_id),
        request.headers.get("webhook-id", ""),
        request.headers.get("webhook-timestamp", ""),
        request.headers.get("webhook-signature", ""),
        request.get_data(),
    )
    db.session.commit()
    return "", 204
