"""Shapes of the subscription API."""

from marshmallow import Schema, fields, validate

from ..pagination import PageArgs
from .models import DELIVERY_STATES, EVENT_TYPES, SUBSCRIPTION_STATES


class PartnerOAuth(Schema):
    token_url = fields.String(required=True, validate=validate.Length(min=8, max=2000))
    client_id = fields.String(required=True, validate=validate.Length(min=1, max=200))
    client_secret = fields.String(
        required=True, validate=validate.Length(min=1, max=500), load_only=True
    )
    scope = fields.String(load_default=None, validate=validate.Length(max=500))


class SubscriptionCreate(Schema):
    url = fields.String(required=True, validate=validate.Length(min=8, max=2000))
    event_types = fields.List(
        fields.String(validate=validate.OneOf(EVENT_TYPES)),
        load_default=lambda: list(EVENT_TYPES),
        validate=validate.Length(min=1),
    )
    oauth = fields.Nested(PartnerOAuth, load_default=None)


class SubscriptionView(Schema):
    id = fields.String()
    organization_id = fields.String()
    url = fields.String()
    event_types = fields.List(fields.String())
    status = fields.String()
    disabled_reason = fields.String()
    oauth = fields.Function(
        lambda s: (
            {"token_url": s.oauth_token_url, "client_id": s.oauth_client_id, "scope": s.oauth_scope}
            if s.oauth_token_url
            else None
        )
    )
    secret_rotating_until = fields.DateTime(attribute="previous_secret_until")
    created_at = fields.DateTime()
    last_success_at = fields.DateTime()
    failing_since = fields.DateTime()


class AttemptView(Schema):
    at = fields.DateTime()
    status_code = fields.Integer()
    error = fields.String()
    duration_ms = fields.Integer()
    response_excerpt = fields.String()


class DeliveryView(Schema):
    id = fields.String()
    event_type = fields.String()
    referral_id = fields.String()
    status = fields.String()
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime()
    created_at = fields.DateTime()
    delivered_at = fields.DateTime()
    payload = fields.Dict()
    attempt_log = fields.List(fields.Nested(AttemptView), data_key="attempt_history")


class SubscriptionListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(SUBSCRIPTION_STATES))


class DeliveryListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(DELIVERY_STATES))
