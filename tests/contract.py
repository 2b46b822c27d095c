"""Check every response the tests get against openapi.yaml: the route, the status, the body."""

import re
from functools import cache
from pathlib import Path

import yaml
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_FILE = Path(__file__).resolve().parent.parent / "openapi.yaml"
CHECKED_PREFIXES = (
    "/api/",
    "/oauth/token",
    "/oauth/revoke",
    "/oauth/introspect",
    "/.well-known/",
    "/healthz",
    "/readyz",
    "/hsds",
)
SPEC_URI = "urn:referral-hub:openapi"


@cache
def spec():
    return yaml.safe_load(SPEC_FILE.read_text())


@cache
def _registry():
    return Registry().with_resource(
        SPEC_URI, Resource.from_contents(spec(), default_specification=DRAFT202012)
    )


@cache
def _templates():
    """(compiled regex, template) for each path in the spec."""
    pairs = []
    for template in spec()["paths"]:
        pattern = re.sub(r"\\\{[^/]+\\\}", "[^/]+", re.escape(template))
        pairs.append((re.compile(f"^{pattern}$"), template))
    return pairs


def _pointer(*parts):
    return "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def find_operation(method, path):
    for pattern, template in _templates():
        if pattern.match(path):
            operation = spec()["paths"][template].get(method.lower())
            if operation is not None:
                return template, operation
    return None, None


def check_response(method, path, status, mimetype, body):
    """Raise AssertionError when the response is not what openapi.yaml promises."""
    template, operation = find_operation(method, path)
    assert operation is not None, f"{method} {path} is not in openapi.yaml"
    responses = operation["responses"]
    key = str(status) if str(status) in responses else "default"
    assert key in responses, f"{method} {template} -> {status} is not documented"
    response, pointer = (
        responses[key],
        _pointer("paths", template, method.lower(), "responses", key),
    )
    while "$ref" in response:
        ref = response["$ref"]
        pointer = ref[1:]
        response = spec()
        for part in ref[2:].split("/"):
            response = response[part.replace("~1", "/").replace("~0", "~")]
    content = response.get("content")
    if not content or mimetype is None:
        return
    assert mimetype in content, f"{method} {template} -> {status} as {mimetype} is not documented"
    if body is None:
        return
    schema_pointer = f"{pointer}/{_pointer('content', mimetype, 'schema')}"
    validator = Draft202012Validator(
        {"$ref": f"{SPEC_URI}#/{schema_pointer.lstrip('/')}"}, registry=_registry()
    )
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
    assert not errors, (
        f"{method} {template} -> {status}: {errors[0].message} at {list(errors[0].path)}"
    )


class ContractCheckedClient(FlaskClient):
    """Flask's test client that checks each API response against the contract."""

    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        request = response.request
        unknown_route = response.status_code in (404, 405) and not _known(request)
        if request.path.startswith(CHECKED_PREFIXES) and not unknown_route:
            body = response.get_json(silent=True) if response.is_json else None
            mimetype = response.mimetype if response.content_length != 0 else None
            # HEAD answers as GET does, without the body (RFC 9110, 9.3.2): GET's contract.
            method = "GET" if request.method == "HEAD" else request.method
            check_response(method, request.path, response.status_code, mimetype, body)
        return response


def _known(request):
    method = "GET" if request.method == "HEAD" else request.method
    return find_operation(method, request.path)[1] is not None
