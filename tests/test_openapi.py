"""openapi.yaml is a valid OpenAPI 3.1 document and describes every route the hub serves."""

import pytest
from openapi_spec_validator import validate

from .contract import check_response, spec

CONTRACT_PREFIXES = ("/api/", "/oauth/", "/.well-known/", "/healthz", "/readyz", "/hsds")
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
IGNORED_METHODS = {"HEAD", "OPTIONS"}


def _flask_path(rule):
    path = rule.rule
    for argument in rule.arguments:
        path = path.replace(f"<uuid:{argument}>", f"{{{argument}}}").replace(
            f"<{argument}>", f"{{{argument}}}"
        )
    return path


def served_operations(app):
    return {
        (_flask_path(rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(CONTRACT_PREFIXES)
        for method in rule.methods - IGNORED_METHODS
    }


def test_the_spec_is_valid_openapi_3_1():
    document = spec()
    assert document["openapi"].startswith("3.1")
    validate(document)


def documented_operations():
    return {
        (path, method)
        for path, item in spec()["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def test_every_route_is_in_the_spec(app):
    missing = served_operations(app) - documented_operations()
    assert not missing, f"routes missing from openapi.yaml: {sorted(missing)}"


def test_the_spec_names_no_operation_the_hub_does_not_serve(app):
    """Path and method together: a documented PATCH on a path served only by GET is stale."""
    stale = {
        (path, method)
        for path, method in documented_operations()
        if path.startswith(CONTRACT_PREFIXES)
    } - served_operations(app)
    assert not stale, f"operations in openapi.yaml the hub does not serve: {sorted(stale)}"


def test_the_contract_check_catches_a_wrong_body():
    with pytest.raises(AssertionError):
        check_response("GET", "/healthz", 200, "application/json", {"status": 7})
    with pytest.raises(AssertionError, match="not documented"):
        check_response("GET", "/healthz", 418, "application/json", {})


def test_the_contract_check_catches_a_wrong_content_type_without_a_json_body():
    with pytest.raises(AssertionError, match="as text/html is not documented"):
        check_response("GET", "/healthz", 200, "text/html", None)
