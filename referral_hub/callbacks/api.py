"""Subscription API: register, list, pause, resume, rotate, delete; deliveries and replay."""

from flask import Blueprint, request

from ..auth.principal import protected
from ..extensions import db
from ..request_handling import json_body
from . import service
from .schemas import (
    DeliveryListArgs,
    DeliveryView,
    SubscriptionCreate,
    SubscriptionListArgs,
    SubscriptionView,
)

bp = Blueprint("callbacks_api", __name__, url_prefix="/api/v1/subscriptions")
NO_STORE = {"Cache-Control": "no-store"}


def _page_and(schema):
    args = schema.load(request.args)
    return {"limit": args.pop("limit"), "cursor": args.pop("cursor")}, args


@bp.post("")
@protected("callbacks:manage")
def create_subscription(principal):
    subscription, secret = service.create_subscription(principal, **json_body(SubscriptionCreate()))
    db.session.commit()
    return {**SubscriptionView().dump(subscription), "secret": secret}, 201, NO_STORE


@bp.get("")
@protected("callbacks:manage")
def list_subscriptions(principal):
    page_args, filters = _page_and(SubscriptionListArgs())
    found, next_cursor = service.list_subscriptions(principal, page_args, **filters)
    return {"items": SubscriptionView(many=True).dump(found), "next_cursor": next_cursor}


@bp.get("/<uuid:subscription_id>")
@protected("callbacks:manage")
def get_subscription(subscription_id, principal):
    return SubscriptionView().dump(service.get_subscription(principal, str(subscription_id)))


@bp.delete("/<uuid:subscription_id>")
@protected("callbacks:manage")
def delete_subscription(subscription_id, principal):
    service.delete_subscription(principal, str(subscription_id))
    db.session.commit()
    return "", 204


@bp.post("/<uuid:subscription_id>/pause")
@protected("callbacks:manage")
def pause(subscription_id, principal):
    subscription = service.set_paused(principal, str(subscription_id), True)
    db.session.commit()
    return SubscriptionView().dump(subscription)


@bp.post("/<uuid:subscription_id>/resume")
@protected("callbacks:manage")
def resume(subscription_id, principal):
    subscription = service.set_paused(principal, str(subscription_id), False)
    db.session.commit()
    return SubscriptionView().dump(subscription)


@bp.post("/<uuid:subscription_id>/rotate-secret")
@protected("callbacks:manage")
def rotate_secret(subscription_id, principal):
    subscription, secret = service.rotate_secret(principal, str(subscription_id))
    db.session.commit()
    return {**SubscriptionView().dump(subscription), "secret": secret}, 200, NO_STORE


@bp.get("/<uuid:subscription_id>/deliveries")
@protected("callbacks:manage")
def deliveries(subscription_id, principal):
    page_args, filters = _page_and(DeliveryListArgs())
    found, next_cursor = service.deliveries(principal, str(subscription_id), page_args, **filters)
    return {"items": DeliveryView(many=True).dump(found), "next_cursor": next_cursor}


@bp.post("/<uuid:subscription_id>/replay")
@protected("callbacks:manage")
def replay_failed(subscription_id, principal):
    count = service.replay(principal, str(subscription_id))
    db.session.commit()
    return {"replayed": count}


@bp.post("/<uuid:subscription_id>/deliveries/<delivery_id>/replay")
@protected("callbacks:manage")
def replay_one(subscription_id, delivery_id, principal):
    count = service.replay(principal, str(subscription_id), delivery_id)
    db.session.commit()
    return {"replayed": count}
