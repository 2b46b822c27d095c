"""Every operation in openapi.yaml, with hostile values in each parameter and body field in turn:
the hub answers each with what the contract documents, and never with a 5xx.

A compact generator driven by the contract rather than a fuzzing library: it is deterministic,
sends every hostile value to every field (a random search finds NUL in a cursor or a lone
surrogate in a nested field only by luck), and fits in a minute on a small machine.
"""

import base64
import copy
import json
import re
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

from referral_hub.audit.views import FILTERS as AUDIT_FILTERS
from referral_hub.directory.views import FILTERS as SEARCH_FILTERS
from referral_hub.extensions import db
from referral_hub.federation import peering
from referral_hub.referrals.network_views import FILTERS as NETWORK_FILTERS

from .contract import spec
from .factories import (
    bearer,
    make_client,
    make_org,
    make_service,
    make_user,
    sign_in,
    user_tokens,
)
from .referral_fixtures import client_party, referral_body

# Values a parameter (path, query, header, form field) can carry: numbers past every integer
# type, NUL, lone surrogates, control characters, very long text, wrong types spelled as text.
HOSTILE_TEXT = (
    "9223372036854775807",
    "-9223372036854775809",
    "1" + "0" * 40,
    "-1",
    "1e309",
    "a\x00b",
    "\ud800",
    "\udfffx",
    "\x01\x1b\x7f\u202e",
    "\u1780" * 5000,
    "",
    "true",
    "[]",
    "%",
    "../../x",
)
# Values a JSON body field can carry: the same, and every JSON type in the wrong place.
HOSTILE_JSON = (
    2**63 - 1,
    2**64,
    -(2**63) - 1,
    10**40,
    -1,
    1.5e308,
    "\x00",
    "a\x00b",
    "\ud800",
    "\udfffx",
    "\x01\x1b\x7f",
    "\u1780" * 5000,
    "",
    "1" * 50,
    "2026-02-30T25:61:00Z",
    True,
    None,
    [],
    {},
    ["\x00", 10**40],
    {"\x00": "\ud800"},
)
WHOLE_BODIES = (
    "[" * 1000 + "]" * 1000,
    '{"a":' * 1000 + "1" + "}" * 1000,
    '{"\\ud800": 1}',
    '"\\u0000"',
    "[1, 2]",
    "null",
    b"\xff\xfe{",
)
BODY_TYPES = ("application/json", "application/x-www-form-urlencoded")
PUBLIC_URL = "https://93.184.216.34/hook"  # a public address: no lookup, never called
POST_AUTH = "client_secret_post"


def resolve(node):
    """The node a $ref points to, followed until it is no reference."""
    while isinstance(node, dict) and "$ref" in node:
        target = spec()
        for part in node["$ref"][2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def example(schema, depth=0):
    """A plausible value for a JSON schema: its example, default or first choice."""
    schema = resolve(schema)
    if depth > 6 or not isinstance(schema, dict):
        return None
    for key in ("const", "default"):
        if key in schema:
            return copy.deepcopy(schema[key])
    if schema.get("examples"):
        return copy.deepcopy(schema["examples"][0])
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return example(schema[key][0], depth + 1)
    if "allOf" in schema:
        merged = {}
        for part in schema["allOf"]:
            value = example(part, depth + 1)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    kind = schema.get("type")
    kind = next((k for k in kind if k != "null"), None) if isinstance(kind, list) else kind
    if kind == "object" or "properties" in schema:
        required = schema.get("required", [])
        return {
            name: example(sub, depth + 1)
            for name, sub in schema.get("properties", {}).items()
            if name in required
        }
    if kind == "array":
        return [example(schema.get("items", {}), depth + 1)] * schema.get("minItems", 0)
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return False
    if kind == "string":
        return {
            "date-time": datetime.now(UTC).isoformat(),
            "date": "2020-01-01",
            "email": "someone@example.org",
            "uri": "https://93.184.216.34/hook",
        }.get(schema.get("format"), "x" * max(schema.get("minLength", 1), 1))
    return None


def properties(schema, depth=0):
    """Every property name a body schema (and its allOf parts) knows."""
    schema = resolve(schema)
    names = set(schema.get("properties", {}))
    for part in schema.get("allOf", []) if depth < 4 else ():
        names |= properties(part, depth + 1)
    return names


def field_paths(value, prefix=()):
    """The path of every key and first list item inside a body, outermost first."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list) and value:
        items = [(0, value[0])]
    else:
        return
    for key, child in items:
        yield (*prefix, key)
        yield from field_paths(child, (*prefix, key))


def with_value(body, path, value):
    changed = copy.deepcopy(body)
    target = changed
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return changed


def operations():
    """(method, path template, operation, path-level parameters) for each documented call."""
    for template, item in spec()["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                shared = item.get("parameters", [])
                yield method.upper(), template, operation, shared


class Hub:
    """The real records a path needs and a token with every scope and role; sends requests."""

    def __init__(self, app, client):
        self.client = client
        organization = make_org()
        user = make_user(organization, roles=["coordinator", "org_admin", "caseworker"])
        scopes = " ".join(app.config["SCOPES"])
        self.token = user_tokens(app, user, scopes)["access_token"]
        self.user = user
        receiver = make_org()
        service = make_service(receiver)
        own_service = make_service(organization)
        subscription = client.post(
            "/api/v1/subscriptions", json={"url": PUBLIC_URL}, headers=bearer(self.token)
        ).get_json()
        sender = client_party(client, organization)
        referral = client.post(
            "/api/v1/referrals", json=referral_body(service.id), headers=sender.headers
        ).get_json()
        client_id, secret = make_client(organization, ["directory:read"], auth_method=POST_AUTH)
        credentials = {"client_id": client_id, "client_secret": secret}
        api_client = client.post(
            f"/api/v1/organizations/{organization.id}/clients",
            json={"name": "fuzzed", "scopes": ["directory:read"]},
            headers=bearer(self.token),
        ).get_json()
        self.ids = {
            "organization_id": organization.id,
            "service_id": own_service.id,
            "referral_id": referral["id"],
            "subscription_id": subscription["id"],
            "user_id": make_user(organization).id,  # not the token's: a change must not end it
            "client_id": api_client["client_id"],
            "delivery_id": "msg_00000000000000000000000000000000",
            "peer_id": peering.invite("test", "Fuzzed peer")["peer_id"],
        }
        self.bodies = {
            ("POST", "/api/v1/referrals"): referral_body(service.id),
            ("POST", "/api/v1/subscriptions"): {"url": PUBLIC_URL},
            ("POST", "/api/v1/directory/import"): client.get(
                "/api/v1/directory/export", headers=bearer(self.token)
            ).get_json(),
            ("PATCH", "/api/v1/services/{service_id}/capacity"): {"places_free": 3},
            ("POST", "/oauth/token"): {"grant_type": "client_credentials", **credentials},
            ("POST", "/oauth/revoke"): {"token": sender.token, **credentials},
            ("POST", "/oauth/introspect"): {"token": sender.token, **credentials},
            ("POST", "/api/v1/services"): {
                "organization_id": organization.id,
                "name": "Fuzzed service",
                "categories": ["detox"],
                "areas": ["17"],
            },
            ("PATCH", "/api/v1/services/{service_id}"): {"name": "Renamed", "minimum_age": 3},
            ("POST", "/api/v1/referrals/{referral_id}/status"): {"status": "withdrawn"},
            ("POST", "/api/v1/organizations/{organization_id}/users"): {
                "email": "new@example.org",
                "roles": ["caseworker"],
                "password": "a long passphrase 1",
            },
        }
        referral_url = f"/api/v1/referrals/{referral['id']}"
        self.headers = {  # headers an operation needs, as of the moment it is called
            ("POST", "/api/v1/referrals/{referral_id}/status"): lambda: {
                "If-Match": client.get(referral_url, headers=bearer(self.token)).headers["ETag"]
            },
        }
        self.failures = []
        self.sent = 0

    def base_body(self, method, template, operation):
        if (method, template) in self.bodies:
            return self.bodies[method, template]
        content = operation.get("requestBody", {}).get("content", {})
        media = next((m for m in BODY_TYPES if m in content), None)
        return example(content[media]["schema"]) if media else None

    def send(
        self, method, template, path_values, query=(), headers=(), body=None, raw=None, field=None
    ):
        """One request; a 5xx, or an answer the contract does not document, is a failure."""
        path = template
        for name, value in path_values.items():
            path = path.replace(
                "{" + name + "}", quote(str(value), safe="", errors="surrogatepass")
            )
        if query:
            path += "?" + urlencode(query, errors="surrogatepass")
        request_headers = {
            **bearer(self.token),
            **self.headers.get((method, template), dict)(),
            **dict(headers),
        }
        kwargs = {}
        if raw is not None:
            kwargs = {"data": raw, "content_type": "application/json"}
        elif body is not None and template.startswith(("/oauth", "/login", "/logout")):
            pairs = [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in body.items()]
            kwargs = {
                "data": urlencode(pairs, errors="surrogatepass"),
                "content_type": "application/x-www-form-urlencoded",
            }
        elif body is not None:
            kwargs = {
                "data": json.dumps(body),
                "content_type": "application/json",
            }
        self.sent += 1
        try:
            response = self.client.open(path, method=method, headers=request_headers, **kwargs)
            status = response.status_code
            detail = response.get_data(as_text=True)[:300] if status >= 500 else ""
        except AssertionError as exc:  # the contract checker's verdict
            status, detail = "contract", str(exc)[:300]
        db.session.rollback()
        if status == "contract" or status >= 500:
            sent = {"headers": dict(headers), "body": raw or body}
            self.failures.append(f"{method} {path[:150]} {sent!r:.200} -> {status} {detail}")


def _parameters(operation, shared):
    return [resolve(p) for p in [*shared, *operation.get("parameters", [])]]


def fuzz(hub):
    """Each operation: as documented, then each parameter and body field hostile in turn."""
    for method, template, operation, shared in sorted(
        operations(), key=lambda op: (op[0] == "DELETE", op[1])
    ):
        parameters = _parameters(operation, shared)
        real = {p["name"]: hub.ids[p["name"]] for p in parameters if p["in"] == "path"}
        body = hub.base_body(method, template, operation)
        hub.send(method, template, real, body=body)
        for parameter in parameters:
            name, where = parameter["name"], parameter["in"]
            for value in HOSTILE_TEXT:
                if where == "path":
                    hub.send(method, template, {**real, name: value}, body=body)
                elif where == "query":
                    hub.send(method, template, real, query=[(name, value)], body=body)
                elif where == "header" and value.isascii() and "\n" not in value:
                    hub.send(method, template, real, headers=[(name, value)], body=body)
        if body is None:
            continue
        content = operation["requestBody"]["content"]
        schema = content.get("application/json", content.get(BODY_TYPES[1], {})).get("schema")
        paths = {*field_paths(body), *((name,) for name in properties(schema or {}))}
        for number, field in enumerate(sorted(paths, key=str)):
            # a nested field gets every third value, the next one the values after them
            values = HOSTILE_JSON if len(field) == 1 else HOSTILE_JSON[number % 3 :: 3]
            for value in values:
                changed = with_value(body, field, value)
                hub.send(method, template, real, body=changed, field=field[-1])
        if "application/json" in content:
            for raw in WHOLE_BODIES:
                hub.send(method, template, real, raw=raw)


def test_no_operation_answers_hostile_input_with_a_5xx(app, client):
    hub = Hub(app, client)
    fuzz(hub)
    assert hub.sent > 1000
    assert not hub.failures, f"{len(hub.failures)} of {hub.sent}:\n" + "\n".join(hub.failures)


# What the pages read from their query strings, and cursors of each list they page through
# with values of the wrong types.
PAGE_PARAMETERS = sorted(
    {*AUDIT_FILTERS, *SEARCH_FILTERS, *NETWORK_FILTERS, "from", "to", "role", "check", "lang"}
    # the pages asking once more, and the find page's box for the reader's own services
    | {"status", "reason", "version", "erase", "include_mine"}
)
PAGE_ORDERINGS = (
    "services.name",
    "organizations.name",
    "referrals.created_at",
    "subscriptions.id",
    "deliveries.event_id",
    "audit_entries.seq",
    "users.email",
)
WRONG_CURSOR_VALUES = ((5, 5), ("a\x00", "\ud800"), (10**30, [1]))


def _cursor(*values):
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode()


def page_routes(app, ids):
    """The path of every page a browser can GET, with real ids in it."""
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.rule.startswith(("/api/", "/hsds", "/static")):
            continue
        yield re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule).format(**ids)


def test_no_page_answers_hostile_queries_with_a_5xx(app, client):
    hub = Hub(app, client)
    sign_in(client, hub.user.email)
    queries = [{name: value for name in PAGE_PARAMETERS} for value in HOSTILE_TEXT]
    queries += [
        {"cursor": _cursor(ordering, *values)}
        for ordering in PAGE_ORDERINGS
        for values in WRONG_CURSOR_VALUES
    ]
    failures = []
    for path in page_routes(app, hub.ids):
        for query in queries:
            url = f"{path}?{urlencode(query, errors='surrogatepass')}"
            response = client.get(url, headers={"Accept": "text/html"})
            db.session.rollback()
            if response.status_code >= 500:
                failures.append(f"{url[:150]} -> {response.status_code}")
    assert not failures, "\n".join(failures)
