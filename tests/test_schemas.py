"""The JSON Schemas published in schemas/ agree with the marshmallow schemas, with openapi.yaml
and with what the API really returns."""

import copy
import json
import string
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from marshmallow import RAISE, ValidationError, fields, missing, validate

from referral_hub import clock
from referral_hub.jobs import referral_deadlines
from referral_hub.partners.schemas import PartnerManifest
from referral_hub.referrals import models
from referral_hub.referrals.schemas import (
    SUBJECT_SEXES,
    ConsentInput,
    ConsentWithdrawal,
    ReferralCreate,
    StatusChange,
)

from .contract import spec
from .factories import make_org, make_service
from .referral_fixtures import REMOVE, move, network, referral_body, send

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
BASE_ID = "https://referral-hub.org/schemas/"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
META = ("$schema", "$id", "title")
FORMATS = Draft202012Validator.FORMAT_CHECKER
PERSONAL = set(models.PERSONAL_CATEGORIES)

# Each published file and the openapi.yaml component that must equal it.
PUBLISHED = {
    "referral-create.schema.json": "ReferralCreate",
    "referral.schema.json": "ReferralView",
    "consent.schema.json": "Consent",
    "referral-event.schema.json": "ReferralEvent",
    "status-change.schema.json": "StatusChange",
    "callback-event.schema.json": "CallbackEvent",
    "partner-manifest.schema.json": None,  # a file the coordinator applies, not an API body
}


def published(name):
    return json.loads((SCHEMA_DIR / name).read_text())


def component(name):
    return spec()["components"]["schemas"][name]


def errors_of(schema, document):
    validator = Draft202012Validator(schema, format_checker=FORMATS)
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def assert_valid(name, document):
    problems = errors_of(published(name), document)
    assert not problems, f"{name}: {problems}"


def marshmallow_refuses(schema, document):
    try:
        schema.load(document)
    except ValidationError:
        return True
    return False


# (a) Every published file is a Draft 2020-12 schema with its id, title and description


@pytest.mark.parametrize("path", sorted(SCHEMA_DIR.glob("*.json")), ids=lambda p: p.name)
def test_every_published_schema_is_a_valid_draft_2020_12_schema(path):
    schema = json.loads(path.read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == DIALECT
    assert schema["$id"] == BASE_ID + path.name.removesuffix(".schema.json")
    assert schema["title"].strip() and schema["description"].strip()
    assert path.name in PUBLISHED, f"{path.name} is not in PUBLISHED"


# (b) The JSON Schemas agree with the marshmallow schemas

# (marshmallow field class, JSON type, format); subclasses before their bases.
FIELD_TYPES = [
    (fields.UUID, "string", "uuid"),
    (fields.Email, "string", "email"),
    (fields.Url, "string", "uri"),
    (fields.AwareDateTime, "string", "date-time"),
    (fields.DateTime, "string", "date-time"),
    (fields.Date, "string", "date"),
    (fields.String, "string", None),
    (fields.Integer, "integer", None),
    (fields.Boolean, "boolean", None),
    (fields.Nested, "object", None),
    (fields.List, "array", None),
]
CONSTRAINTS = ("enum", "minLength", "maxLength", "minItems", "maxItems", "minimum", "maximum")


def _types(prop):
    kind = prop.get("type")
    return set(kind) if isinstance(kind, list) else {kind} if kind else set()


def _constraints(field):
    """The JSON Schema keywords that a marshmallow field's validators stand for."""
    found = {}
    for validator in field.validators:
        if isinstance(validator, validate.OneOf):
            found["enum"] = list(validator.choices)
        elif isinstance(validator, validate.Length):
            low, high = (
                ("minItems", "maxItems")
                if isinstance(field, fields.List)
                else ("minLength", "maxLength")
            )
            smallest = validator.equal if validator.equal is not None else validator.min
            largest = validator.equal if validator.equal is not None else validator.max
            found.update({k: v for k, v in ((low, smallest), (high, largest)) if v is not None})
        elif isinstance(validator, validate.Range):
            assert validator.min_inclusive and validator.max_inclusive, "teach exclusive ranges"
            found.update(
                {
                    k: v
                    for k, v in (("minimum", validator.min), ("maximum", validator.max))
                    if v is not None
                }
            )
        elif isinstance(validator, validate.Email | validate.URL):
            continue  # the field's format
        elif isinstance(validator, validate.Regexp):
            found["pattern"] = validator.regex.pattern.replace("\\Z", "$")
        else:
            raise AssertionError(f"no JSON Schema keyword known for {validator!r}")
    return found


def agree_field(field, prop, where):
    """One marshmallow field and its JSON Schema property say the same."""
    kind, form = next((t, f) for cls, t, f in FIELD_TYPES if isinstance(field, cls))
    types = _types(prop)
    assert types - {"null"} == {kind}, f"{where}: type {sorted(types)}, marshmallow {kind}"
    assert ("null" in types) == field.allow_none, f"{where}: null allowed differs"
    assert prop.get("format") == form, f"{where}: format {prop.get('format')}, expected {form}"
    expected = _constraints(field)
    for keyword in (*CONSTRAINTS, "pattern"):
        actual = prop.get(keyword)
        if keyword == "enum" and actual is not None:
            assert (None in actual) == field.allow_none, f"{where}: null in enum differs"
            actual = [value for value in actual if value is not None]
        assert actual == expected.get(keyword), f"{where}: {keyword} {actual} != {expected}"
    if not field.required and field.load_default is not missing:
        default = field.load_default() if callable(field.load_default) else field.load_default
        assert prop.get("default", missing) == default, f"{where}: default differs"
    else:
        assert "default" not in prop, f"{where}: default given but marshmallow has none"
    if isinstance(field, fields.Nested):
        agree(field.schema, prop, where)
    elif isinstance(field, fields.List):
        agree_field(field.inner, prop["items"], f"{where}[]")


def agree(schema, json_schema, where="(root)"):
    """A marshmallow schema and a JSON Schema object have the same fields, rules and nesting."""
    names = {field.data_key or name: field for name, field in schema.fields.items()}
    properties = json_schema.get("properties", {})
    assert set(properties) == set(names), (
        f"{where}: only in JSON Schema {sorted(set(properties) - set(names))}, "
        f"only in marshmallow {sorted(set(names) - set(properties))}"
    )
    required = {name for name, field in names.items() if field.required}
    assert set(json_schema.get("required", [])) == required, f"{where}: required differs"
    closed = json_schema.get("additionalProperties") is False
    assert closed == (schema.unknown == RAISE), f"{where}: closed to unknown fields differs"
    for name, field in names.items():
        agree_field(field, properties[name], f"{where}.{name}")


AGREEING = [
    (ReferralCreate, lambda: published("referral-create.schema.json")),
    (ConsentInput, lambda: published("consent.schema.json")),
    (StatusChange, lambda: published("status-change.schema.json")),
    (ConsentWithdrawal, lambda: component("ConsentWithdrawal")),
    (PartnerManifest, lambda: published("partner-manifest.schema.json")),
]


@pytest.mark.parametrize(("schema", "json_schema"), AGREEING, ids=[s.__name__ for s, _ in AGREEING])
def test_json_schemas_agree_with_marshmallow(schema, json_schema):
    agree(schema(), json_schema())


def test_the_agreement_check_catches_drift():
    class WithExtraField(ReferralCreate):
        colour = fields.String()

    with pytest.raises(AssertionError, match="only in marshmallow"):
        agree(WithExtraField(), published("referral-create.schema.json"))
    fewer_outcomes = published("status-change.schema.json")
    fewer_outcomes["properties"]["outcome"]["enum"].remove("referred_elsewhere")
    with pytest.raises(AssertionError, match="enum"):
        agree(StatusChange(), fewer_outcomes)
    optional_method = published("consent.schema.json")
    optional_method["required"].remove("method")
    with pytest.raises(AssertionError, match="required"):
        agree(ConsentInput(), optional_method)
    deeper = published("referral-create.schema.json")
    deeper["properties"]["subject"]["properties"]["identity"]["properties"].pop("other_names")
    with pytest.raises(AssertionError, match=r"subject\.identity"):
        agree(ReferralCreate(), deeper)


@pytest.mark.parametrize(
    ("name", "pointer", "expected"),
    [
        ("referral.schema.json", "status", models.STATUSES),
        ("referral.schema.json", "fhir_status", tuple(models.FHIR_TASK_STATUS.values())),
        ("referral.schema.json", "urgency", models.URGENCIES),
        ("referral.schema.json", "subject/sex", SUBJECT_SEXES),
        ("referral.schema.json", "redacted/items", models.PERSONAL_CATEGORIES),
        ("referral.schema.json", "consent/given_by", models.CONSENT_GIVERS),
        ("referral.schema.json", "consent/method", models.CONSENT_METHODS),
        ("referral.schema.json", "consent/status", models.CONSENT_STATES),
        ("referral.schema.json", "consent/categories/items", models.PERSONAL_CATEGORIES),
        ("referral.schema.json", "decline_reason", models.DECLINE_REASONS),
        ("referral.schema.json", "outcome", models.OUTCOMES),
        ("referral-event.schema.json", "from_status", models.STATUSES),
        ("referral-event.schema.json", "to_status", models.STATUSES),
        ("referral-event.schema.json", "outcome", models.OUTCOMES),
        ("callback-event.schema.json", "data/status", models.STATUSES),
        ("callback-event.schema.json", "data/previous_status", models.STATUSES),
    ],
)
def test_view_enums_are_the_models(name, pointer, expected):
    node = published(name)
    for part in pointer.split("/"):
        node = node["items"] if part == "items" else node["properties"][part]
    assert [value for value in node["enum"] if value is not None] == list(expected)


def test_the_consent_and_personal_data_shapes_are_the_same_everywhere():
    create = published("referral-create.schema.json")
    consent = {k: v for k, v in published("consent.schema.json").items() if k not in META}
    assert create["properties"]["consent"] == consent
    sent = create["properties"]["subject"]["properties"]
    shown = published("referral.schema.json")["properties"]["subject"]["properties"]
    for category in models.PERSONAL_CATEGORIES:
        assert shown[category] == sent[category], category


# The wire format example of architecture.md (its codes are real ones of directory/).
WIRE_EXAMPLE = {
    "service_id": "9a3c0a52-6c1e-4a43-9d9e-2f2a3b6f1c10",
    "urgency": "high",
    "needs": ["detox", "family_strengthening"],
    "subject": {
        "sex": "male",
        "birth_year": 2010,
        "province": "17",
        "district": "1710",
        "identity": {"given_name": "Dara", "family_name": "Sok", "date_of_birth": "2010-03-14"},
        "contact": {
            "phone": "+855 12 345 678",
            "address": "Phnom Krom village",
            "caregiver_name": "Sok Nary",
        },
        "health": {"notes": "daily alcohol use since 2025"},
        "case_history": {"reason": "father violent when drinking", "summary": "..."},
    },
    "consent": {
        "given_by": "guardian",
        "method": "thumbprint",
        "obtained_at": "2026-11-20T09:30:00Z",
        "categories": ["identity", "contact", "health"],
        "share_identity_with_government": False,
        "expires_at": "2027-05-20T00:00:00Z",
    },
}


def test_the_wire_format_example_is_valid_for_both():
    assert_valid("referral-create.schema.json", WIRE_EXAMPLE)
    loaded = ReferralCreate().load(WIRE_EXAMPLE)
    assert loaded["subject"]["identity"]["date_of_birth"] == date(2010, 3, 14)


def _changed(document, path, value):
    changed = copy.deepcopy(document)
    *parents, last = path.split(".")
    target = changed
    for part in parents:
        target = target[part]
    if value is REMOVE:
        del target[last]
    else:
        target[last] = value
    return changed


INVALID_CREATES = [
    ("colour", "blue"),
    ("subject.nickname", "Dee"),
    ("subject.identity.nickname", "Dee"),
    ("subject.contact.email", "dara@example.org"),
    ("consent.witness", "the village chief"),
    ("eligibility_override", {"reason": "too short"}),
    ("eligibility_override", {"reason": "Young adult leaving care", "by": "me"}),
    ("urgency", "urgent"),
    ("subject.sex", "boy"),
    ("consent.method", "email"),
    ("consent.categories", ["identity", "finance"]),
    ("service_id", REMOVE),
    ("service_id", "not-a-uuid"),
    ("subject", REMOVE),
    ("subject.province", REMOVE),
    ("subject.province", "1"),
    ("subject.district", "17100"),
    ("subject.birth_year", 1800),
    ("subject.birth_year", "two thousand"),
    ("subject.identity.date_of_birth", "14/03/2010"),
    ("subject.identity.given_name", ""),
    ("consent", REMOVE),
    ("consent.obtained_at", REMOVE),
    ("consent.obtained_at", "2026-11-20T09:30:00"),
    ("consent.share_identity_with_government", None),
    ("consent.justification", "too short"),
    ("needs", "detox"),
]


@pytest.mark.parametrize(("path", "value"), INVALID_CREATES, ids=lambda v: str(v)[:30])
def test_invalid_referrals_are_refused_by_both(path, value):
    document = _changed(WIRE_EXAMPLE, path, value)
    assert errors_of(published("referral-create.schema.json"), document)
    assert marshmallow_refuses(ReferralCreate(), document)


def test_cross_field_rules_are_refused_by_both():
    no_age = _changed(WIRE_EXAMPLE, "subject.birth_year", REMOVE)
    unjustified = _changed(
        _changed(WIRE_EXAMPLE, "urgency", "emergency"), "consent.given_by", "best_interests"
    )
    for document in (no_age, unjustified):
        assert errors_of(published("referral-create.schema.json"), document)
        assert marshmallow_refuses(ReferralCreate(), document)
    justified = _changed(unjustified, "consent.justification", "Child alone at night; no parent")
    assert_valid("referral-create.schema.json", justified)
    ReferralCreate().load(justified)


SERVICE_ID = "9a3c0a52-6c1e-4a43-9d9e-2f2a3b6f1c10"
VALID_CHANGES = [
    {"status": "received"},
    {"status": "withdrawn", "reason": "The family moved to Phnom Penh"},
    {"status": "declined", "reason": "no_capacity", "suggested_service_id": SERVICE_ID},
    {"status": "completed", "outcome": "service_provided", "reason": None},
]
INVALID_CHANGES = [
    {},
    {"status": "lost"},
    {"status": "accepted", "colour": "blue"},
    {"status": "completed", "outcome": "great"},
    {"status": "declined", "reason": "", "suggested_service_id": SERVICE_ID},
    {"status": "declined", "reason": "no_capacity", "suggested_service_id": "elsewhere"},
]


@pytest.mark.parametrize("document", VALID_CHANGES, ids=str)
def test_valid_status_changes_are_accepted_by_both(document):
    assert_valid("status-change.schema.json", document)
    StatusChange().load(document)


@pytest.mark.parametrize("document", INVALID_CHANGES, ids=str)
def test_invalid_status_changes_are_refused_by_both(document):
    assert errors_of(published("status-change.schema.json"), document)
    assert marshmallow_refuses(StatusChange(), document)


# Property check: documents built from the rules are valid for both; one fault makes both refuse.

words = st.text(string.ascii_letters + string.digits + " áក", min_size=1, max_size=30)
offsets = st.integers(-12 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
moments = st.datetimes(
    min_value=datetime(1950, 1, 1), max_value=datetime(2100, 1, 1), timezones=offsets
).map(datetime.isoformat)
long_texts = st.text(min_size=1, max_size=40)
phones = st.text(min_size=3, max_size=60)


def _some(**members):
    return st.fixed_dictionaries({}, optional=members)


CATEGORY_DATA = {
    "identity": _some(
        given_name=words,
        family_name=words,
        other_names=words,
        date_of_birth=st.dates(min_value=date(1900, 1, 1)).map(date.isoformat),
    ),
    "contact": _some(
        phone=phones,
        address=long_texts,
        caregiver_name=words,
        caregiver_phone=phones,
        caregiver_relationship=words,
    ),
    "health": _some(notes=long_texts, disability=long_texts),
    "case_history": _some(reason=long_texts, summary=long_texts, risks=long_texts),
}


@st.composite
def referral_documents(draw):
    province = draw(st.integers(1, 25).map("{:02d}".format))
    subject = {"sex": draw(st.sampled_from(SUBJECT_SEXES)), "province": province}
    ages = draw(st.sampled_from([("age",), ("birth_year",), ("age", "birth_year")]))
    if "age" in ages:
        subject["age"] = draw(st.integers(0, 120))
    if "birth_year" in ages:
        subject["birth_year"] = draw(st.integers(1900, 2100))
    if draw(st.booleans()):
        subject["district"] = province + draw(st.integers(0, 99).map("{:02d}".format))
    for category in draw(st.sets(st.sampled_from(models.PERSONAL_CATEGORIES))):
        subject[category] = draw(CATEGORY_DATA[category])
    categories = draw(st.lists(st.sampled_from(models.PERSONAL_CATEGORIES), max_size=4))
    if "identity" in subject and "identity" not in categories:
        categories.append("identity")
    consent = {
        "given_by": draw(st.sampled_from(models.CONSENT_GIVERS)),
        "method": draw(st.sampled_from(models.CONSENT_METHODS)),
        "obtained_at": draw(moments),
        "categories": categories,
    }
    if draw(st.booleans()):
        consent["share_identity_with_government"] = draw(st.booleans())
    if draw(st.booleans()):
        consent["expires_at"] = draw(st.none() | moments)
    if consent["given_by"] == "best_interests" or draw(st.booleans()):
        consent["justification"] = draw(st.text(min_size=20, max_size=60))
    urgency = (
        "emergency"
        if consent["given_by"] == "best_interests"
        else draw(st.sampled_from(models.URGENCIES))
    )
    document = {
        "service_id": str(draw(st.uuids())),
        "urgency": urgency,
        "subject": subject,
        "consent": consent,
    }
    if draw(st.booleans()):
        document["needs"] = draw(st.lists(st.text(max_size=60), max_size=3))
    if draw(st.booleans()):
        document["eligibility_override"] = draw(
            st.none() | st.fixed_dictionaries({"reason": st.text(min_size=10, max_size=60)})
        )
    return document


REQUIRED_PATHS = [
    "service_id",
    "urgency",
    "subject",
    "consent",
    "subject.sex",
    "subject.province",
    "consent.given_by",
    "consent.method",
    "consent.obtained_at",
    "consent.categories",
]
ENUM_PATHS = ["urgency", "subject.sex", "consent.given_by", "consent.method"]
STRING_PATHS = ["service_id", "consent.obtained_at", "subject.province", "urgency"]


def _objects(document, prefix=""):
    """Dotted paths of the objects in a document ("" for the document itself)."""
    yield prefix
    for key, value in document.items():
        if isinstance(value, dict):
            yield from _objects(value, f"{prefix}{key}.")


RELAXED = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@RELAXED
@given(referral_documents())
def test_documents_valid_by_the_schema_load_with_marshmallow(document):
    assert errors_of(published("referral-create.schema.json"), document) == []
    loaded = ReferralCreate().load(document)
    assert set(loaded["subject"]) == set(document["subject"])


@RELAXED
@given(referral_documents(), st.data())
def test_one_fault_makes_both_refuse(document, data):
    fault = data.draw(st.sampled_from(["unknown", "missing", "enum", "type"]))
    if fault == "unknown":
        where = data.draw(st.sampled_from(sorted(_objects(document))))
        document = _changed(document, f"{where}x_unknown", data.draw(words))
    elif fault == "missing":
        document = _changed(document, data.draw(st.sampled_from(REQUIRED_PATHS)), REMOVE)
    elif fault == "enum":
        document = _changed(document, data.draw(st.sampled_from(ENUM_PATHS)), "not_a_code")
    else:
        document = _changed(document, data.draw(st.sampled_from(STRING_PATHS)), 12345)
    assert errors_of(published("referral-create.schema.json"), document), fault
    assert marshmallow_refuses(ReferralCreate(), document), fault


# (c) openapi.yaml's components are the published files, and the operations use them


@pytest.mark.parametrize(
    ("name", "component_name"), [(n, c) for n, c in PUBLISHED.items() if c is not None]
)
def test_openapi_components_are_the_published_schemas(name, component_name):
    assert component(component_name) == published(name)


def _schema_ref(path, method, *keys):
    node = spec()["paths"][path][method]
    for key in keys:
        node = node[key]
    return node["$ref"].removeprefix("#/components/schemas/")


@pytest.mark.parametrize(
    ("path", "method", "keys", "expected"),
    [
        ("/api/v1/referrals", "post", ("requestBody",), "ReferralCreate"),
        ("/api/v1/referrals", "post", ("responses", "201"), "ReferralView"),
        ("/api/v1/referrals", "post", ("responses", "200"), "ReferralView"),
        ("/api/v1/referrals", "get", ("responses", "200"), "ReferralPage"),
        ("/api/v1/referrals/{referral_id}", "get", ("responses", "200"), "ReferralView"),
        (
            "/api/v1/referrals/{referral_id}/events",
            "get",
            ("responses", "200"),
            "ReferralEventPage",
        ),
        ("/api/v1/referrals/{referral_id}/status", "post", ("requestBody",), "StatusChange"),
        ("/api/v1/referrals/{referral_id}/status", "post", ("responses", "200"), "ReferralView"),
        (
            "/api/v1/referrals/{referral_id}/consent/withdraw",
            "post",
            ("requestBody",),
            "ConsentWithdrawal",
        ),
        (
            "/api/v1/referrals/{referral_id}/consent/withdraw",
            "post",
            ("responses", "200"),
            "ReferralView",
        ),
    ],
)
def test_referral_operations_use_the_published_schemas(path, method, keys, expected):
    media = ("content", "application/json", "schema")
    assert _schema_ref(path, method, *keys, *media) == expected


def test_pages_and_shared_enums_use_the_published_schemas():
    schemas = spec()["components"]["schemas"]
    assert schemas["ReferralListItem"]["allOf"][0]["$ref"].endswith("/ReferralView")
    assert schemas["ReferralEventPage"]["properties"]["items"]["items"]["$ref"].endswith(
        "/ReferralEvent"
    )
    assert schemas["ReferralStatus"]["enum"] == list(models.STATUSES)
    assert schemas["Urgency"]["enum"] == list(models.URGENCIES)


# (d) What the API returns validates against the published schemas


@pytest.fixture
def net(app, client):
    return network(app, client)


def _sent(client, net, **changes):
    response = send(client, net["sender"], referral_body(net["service"].id, **changes))
    assert response.status_code == 201, response.get_json()
    assert_valid("referral.schema.json", response.get_json())
    return response.get_json()


def _view(client, party, referral):
    response = client.get(f"/api/v1/referrals/{referral['id']}", headers=party.headers)
    assert response.status_code == 200, response.get_json()
    view = response.get_json()
    assert_valid("referral.schema.json", view)
    return view


def _shown(view):
    return PERSONAL & set(view["subject"])


def _moved(client, party, referral, status, **values):
    response = move(client, party, referral, status, **values)
    assert response.status_code == 200, response.get_json()
    assert_valid("referral.schema.json", response.get_json())
    return response.get_json()


def test_every_partys_view_validates(client, net):
    referral = _sent(client, net, consent__share_identity_with_government=True)
    sender = _view(client, net["sender"], referral)
    receiver = _view(client, net["receiver"], referral)
    focal = _view(client, net["focal_in"], referral)
    coordinator = _view(client, net["coordinator"], referral)
    assert _shown(sender) == PERSONAL and sender["redacted"] == []
    assert _shown(receiver) == {"identity", "contact", "health"}
    assert receiver["redacted"] == ["case_history"]
    assert _shown(focal) == {"identity"} and _shown(coordinator) == set()
    for view in (sender, receiver, focal, coordinator):
        assert "justification" not in view["consent"] and "eligibility_override" not in view
    for status, extra in [
        ("received", {}),
        ("accepted", {}),
        ("in_progress", {}),
        ("completed", {"outcome": "service_provided"}),
    ]:
        referral = _moved(client, net["receiver"], referral, status, **extra)
    assert referral["outcome"] == "service_provided"


def test_the_optional_members_validate_where_they_appear(client, net):
    referral = _sent(
        client,
        net,
        urgency="emergency",
        subject__birth_year=REMOVE,
        subject__age=25,
        subject__district="1710",
        consent__given_by="best_interests",
        consent__justification="Child found alone at night; mother cannot be reached.",
        eligibility_override={"reason": "Young adult leaving care; centre agreed by phone"},
    )
    sender = _view(client, net["sender"], referral)
    assert "justification" in sender["consent"] and "eligibility_override" in sender
    assert sender["subject"]["birth_year"] is None and sender["subject"]["district"] == "1710"
    receiver = _view(client, net["receiver"], referral)
    assert "justification" not in receiver["consent"] and "eligibility_override" in receiver
    elsewhere = make_service(make_org(), name="Green House")
    received = _moved(client, net["receiver"], referral, "received")
    declined = _moved(
        client,
        net["receiver"],
        received,
        "declined",
        reason="no_capacity",
        suggested_service_id=elsewhere.id,
    )
    assert declined["decline_reason"] == "no_capacity"
    withdrawn = client.post(
        f"/api/v1/referrals/{referral['id']}/consent/withdraw",
        json={"erase": True},
        headers=net["sender"].headers,
    )
    assert withdrawn.status_code == 200
    assert_valid("referral.schema.json", withdrawn.get_json())
    erased = _view(client, net["sender"], referral)
    assert erased["erased"] is True and _shown(erased) == set()
    assert erased["consent"]["withdrawn_at"] is not None


def test_list_items_validate_and_carry_no_personal_data(client, net):
    _sent(client, net)
    _sent(client, net, consent__justification="Guardian agreed after a long home visit")
    for party in ("sender", "receiver", "focal_in", "coordinator"):
        page = client.get("/api/v1/referrals", headers=net[party].headers).get_json()
        assert len(page["items"]) == 2, party
        for item in page["items"]:
            assert_valid("referral.schema.json", item)
            assert _shown(item) == set() and "justification" not in item["consent"]


def test_events_validate(client, net):
    referral = _sent(client, net, urgency="emergency")
    referral = _moved(client, net["receiver"], referral, "received")
    clock.freeze(clock.now() + timedelta(hours=5))
    try:
        referral_deadlines()
    finally:
        clock.freeze(None)
    response = client.post(
        f"/api/v1/referrals/{referral['id']}/consent/withdraw", headers=net["sender"].headers
    )
    assert response.status_code == 200
    referral = _view(client, net["sender"], referral)
    _moved(client, net["sender"], referral, "withdrawn", reason="The family moved away")
    for party in ("sender", "receiver", "coordinator"):
        events = client.get(
            f"/api/v1/referrals/{referral['id']}/events", headers=net[party].headers
        ).get_json()["items"]
        for event in events:
            assert_valid("referral-event.schema.json", event)
    assert [e["type"] for e in events] == [
        "referral.created",
        "referral.status_changed",
        "referral.overdue",
        "referral.consent_withdrawn",
        "referral.status_changed",
    ]
    assert events[2]["actor"] == "system" and events[2]["organization_id"] is None


def test_the_wire_format_example_is_accepted_by_the_api(client, net):
    now = datetime.now(UTC)
    body = copy.deepcopy(WIRE_EXAMPLE)
    body["service_id"] = net["service"].id
    body["subject"]["birth_year"] = now.year - 15
    body["subject"]["identity"]["date_of_birth"] = f"{now.year - 15}-03-14"
    body["consent"]["obtained_at"] = (now - timedelta(days=2)).isoformat()
    body["consent"]["expires_at"] = (now + timedelta(days=180)).isoformat()
    assert_valid("referral-create.schema.json", body)
    response = send(client, net["sender"], body, key="7b1e-wire-example")
    assert response.status_code == 201, response.get_json()
    receiver = _view(client, net["receiver"], response.get_json())
    assert receiver["redacted"] == ["case_history"] and receiver["needs"] == body["needs"]


def test_rules_the_schemas_add_to_marshmallow_are_the_apis(client, net):
    """The if/then rules of the schemas are checked by the service: the API refuses them too."""
    refused_creates = [
        (
            {
                "consent__given_by": "best_interests",
                "consent__justification": "Child alone at night; no parent",
            },
            "consent.given_by",
        ),
        ({"consent__categories": ["contact"]}, "consent.categories"),
    ]
    for changes, field in refused_creates:
        body = referral_body(net["service"].id, **changes)
        assert errors_of(published("referral-create.schema.json"), body)
        ReferralCreate().load(body)
        response = send(client, net["sender"], body)
        assert response.status_code == 422
        assert field in {e["field"] for e in response.get_json()["errors"]}
    referral = _moved(client, net["receiver"], _sent(client, net), "received")
    refused_changes = [
        ("declined", {}, "reason"),
        ("declined", {"reason": "busy"}, "reason"),
        ("accepted", {"suggested_service_id": net["service"].id}, "suggested_service_id"),
    ]
    for status, extra, field in refused_changes:
        assert errors_of(published("status-change.schema.json"), {"status": status, **extra})
        response = move(client, net["receiver"], referral, status, **extra)
        assert response.status_code == 422, response.get_json()
        assert field in {e["field"] for e in response.get_json()["errors"]}
    for status in ("accepted", "in_progress"):
        referral = _moved(client, net["receiver"], referral, status)
    assert errors_of(published("status-change.schema.json"), {"status": "completed"})
    assert move(client, net["receiver"], referral, "completed").status_code == 422


def test_the_callback_example_validates():
    """The example partners read in openapi.yaml's webhooks, not a copy of it."""
    body = spec()["webhooks"]["referralCallback"]["post"]["requestBody"]
    example = body["content"]["application/json"]["example"]
    assert_valid("callback-event.schema.json", example)
    with_personal_data = _changed(example, "data.given_name", "Dara")
    assert errors_of(published("callback-event.schema.json"), with_personal_data)
