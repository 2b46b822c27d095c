"""Turning what the service layer refuses into messages beside the form fields."""

from ..errors import field_errors


def by_field(pairs):
    """[{field, message}] as {field: [message, ...]} for the form macros."""
    found = {}
    for pair in pairs:
        found.setdefault(pair["field"], []).append(pair["message"])
    return found


def invalid_fields(exc):
    """A marshmallow ValidationError's messages by field."""
    return by_field(field_errors(exc.normalized_messages()))


def refused(problem):
    """A Problem's fields at fault, or its detail for the whole form."""
    found = by_field(problem.errors or [])
    found.setdefault("_form", []).append(problem.detail)
    return found
