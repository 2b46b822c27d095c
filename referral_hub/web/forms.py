"""Turning what a form's schema or the service layer refuses into messages beside its fields."""

from marshmallow import ValidationError

from ..errors import Conflict, field_errors


def _form_field(name, renamed):
    """The form field showing an error about `name` ("subject.age", "phones.0.number")."""
    parts = [part for part in name.split(".") if not part.isdigit()]
    if not parts or parts[0] == "_schema":
        return "_form"
    dotted = ".".join(parts)
    return renamed.get(dotted) or renamed.get(parts[0]) or dotted


def form_errors(exc, renamed=None):
    """{field: [message, ...]} for the form macros, from a ValidationError or a Problem.

    A list item's error goes to its list, a whole-form one to "_form". A Problem's detail goes
    to "_form" only when it names no field; a Conflict's detail replaces its fields' messages.
    `renamed` maps an API field (a whole name or its first part) to the form field showing it.
    """
    if isinstance(exc, ValidationError):
        flat = field_errors(exc.normalized_messages())
    else:
        flat = exc.errors or [{"field": "_form", "message": exc.detail}]
    errors = {}
    for item in flat:
        message = exc.detail if isinstance(exc, Conflict) else item["message"]
        errors.setdefault(_form_field(item["field"], renamed or {}), []).append(message)
    return errors
