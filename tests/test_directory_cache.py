"""The directory as the API publishes it is kept by each process (directory/published.py): a
second read costs no statement, and a change, made here through the API, the ORM or a bulk
statement, or made by another process, is seen by the next read (issue 13)."""

import time

import pytest
from sqlalchemy import update

from referral_hub import create_app
from referral_hub.directory import published
from referral_hub.directory.models import Location, Service
from referral_hub.extensions import db
from referral_hub.listening import ChannelListener
from referral_hub.process_cache import ProcessCache

from .caches import listening
from .conftest import hub_config
from .costs import cost
from .factories import bearer, client_token, make_client, make_org, make_service
from .referral_fixtures import network, referral_body, send, user_party

NOTHING = {"statements": 0, "commits": 0}


@pytest.fixture
def shelter(app, client):
    """A service, its owner's token (to change it) and a reader's, with the cache trusted."""
    owner = make_org()
    service = make_service(owner, name="Water Lily House", categories=["detox"], areas=["17"])
    client_id, secret = make_client(owner, ["directory:write", "directory:read"])
    token = client_token(client, client_id, secret, "directory:write directory:read")
    client.get(f"/api/v1/services/{service.id}", headers=bearer(token))
    listening(app, published.NAME)
    return service, bearer(token)


def _read(client, service, headers):
    """The service's document, and what it shows in a search."""
    service_id = db.inspect(service).identity[0]  # loads nothing, even once expired by a commit
    document = client.get(f"/api/v1/services/{service_id}", headers=headers).get_json()
    found = client.get("/api/v1/services?category=detox", headers=headers).get_json()["items"]
    return document, next(item for item in found if item["id"] == service_id)


def _places(client, service, headers):
    return tuple(view["capacity"]["places_free"] for view in _read(client, service, headers))


def test_a_second_read_costs_no_statement(client, shelter):
    service, headers = shelter
    _, first = cost(lambda: _read(client, service, headers))
    kept, again = cost(lambda: _read(client, service, headers))
    assert first["statements"] > 0 and again == NOTHING
    assert kept[0]["name"] == kept[1]["name"] == "Water Lily House"


def test_a_change_through_the_api_is_seen_by_the_next_read(client, shelter):
    service, headers = shelter
    assert _places(client, service, headers) == (None, None)
    changed = client.patch(
        f"/api/v1/services/{service.id}/capacity", headers=headers, json={"places_free": 4}
    )
    assert changed.status_code == 200
    assert _places(client, service, headers) == (4, 4)


def test_a_change_through_the_orm_or_a_bulk_statement_is_seen_by_the_next_read(client, shelter):
    service, headers = shelter
    _read(client, service, headers)
    service.places_free = 2
    db.session.commit()
    assert _places(client, service, headers) == (2, 2)
    db.session.execute(update(Service).where(Service.id == service.id).values(places_free=9))
    db.session.commit()
    assert _places(client, service, headers) == (9, 9)
    db.session.add(Location(organization_id=service.organization_id, name="Annex", address="St 3"))
    db.session.commit()  # a change elsewhere in the directory drops every kept value
    assert cost(lambda: _read(client, service, headers))[1]["statements"] > 0


def test_a_change_rolled_back_is_not_announced_and_keeps_nothing_stale(client, shelter):
    service, headers = shelter
    _read(client, service, headers)
    service.places_free = 7
    db.session.flush()
    db.session.rollback()
    assert _places(client, service, headers) == (None, None)


def test_a_referral_taking_its_senders_next_reference_keeps_the_directory(app, client, shelter):
    """The reference counter is a column of the sender's organisation, never published."""
    service, headers = shelter
    net = network(app, client)
    for _ in range(2):  # the first gives the sender its short code, and starts the listeners
        listening(app, published.NAME)
        _read(client, service, headers)
        created = send(client, net["sender"], referral_body(net["service"].id))
        assert created.status_code == 201, created.get_json()
    assert cost(lambda: _read(client, service, headers))[1] == NOTHING


def test_a_change_made_by_another_process_is_seen(
    app, client, shelter, database_url, live_port, monkeypatch
):
    """PostgreSQL: at once, by NOTIFY. SQLite: within the values' lifetime."""
    service, headers = shelter
    monkeypatch.setattr(app.extensions[published.NAME], "seconds", 1.0)
    _read(client, service, headers)
    other = create_app(hub_config(database_url, live_port))
    try:
        changed = other.test_client().patch(
            f"/api/v1/services/{service.id}/capacity", headers=headers, json={"places_free": 5}
        )
        assert changed.status_code == 200, changed.get_json()
    finally:
        with other.app_context():
            db.engine.dispose()
    seen_in = 1.5 if db.engine.dialect.name == "sqlite" else 0.5
    deadline = time.monotonic() + seen_in
    while _places(client, service, headers) != (5, 5):
        assert time.monotonic() < deadline, "the other process's change was not seen"
        time.sleep(0.05)


def test_a_government_reader_never_gets_a_partners_kept_safe_house_address(app, client, shelter):
    service, headers = shelter
    service.locations.append(
        Location(
            organization_id=service.organization_id,
            name="Safe house",
            address="Street 99",
            confidential=True,
        )
    )
    db.session.commit()
    focal = bearer(user_party(app, ["focal_point"], ["17"], "directory:read").token)
    for readers in ((headers, focal), (focal, headers)):
        db.session.execute(update(Service).values(places_free=None))  # drops kept values
        db.session.commit()
        for reader in readers:
            for view in _read(client, service, reader):
                assert (view["locations"][0]["address"] == "Street 99") is (reader is headers)


def test_a_process_does_not_hear_its_own_notify(app, database_url):
    """It forgot its values when its change committed; hearing it again would forget twice."""
    if not database_url.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    heard = []
    listener = ChannelListener(
        app, "referral_hub_test", lambda: heard.append(1), lambda: None, ignored="mine"
    )
    listener.start()
    try:
        assert listener.listening.wait(5)
        for payload in ("mine", "theirs"):
            with db.engine.connect() as connection:
                connection.exec_driver_sql(f"NOTIFY referral_hub_test, '{payload}'")
                connection.commit()
            time.sleep(0.3)
            assert heard == ([] if payload == "mine" else [1])
    finally:
        listener.stop()


def test_beyond_its_size_a_cache_drops_the_least_recently_used(app):
    cache = ProcessCache(app, "test_cache", "referral_hub_test", 60, 10, weigh=len)
    reads = []

    def get(key):
        return cache.get(key, lambda: reads.append(key) or key * 4)

    get("warm")  # on PostgreSQL values are kept once the cache listens
    try:
        if cache.listener is not None:
            assert cache.listener.listening.wait(5)
        cache.forget()
        reads.clear()
        for key in ("a", "b", "a", "c", "a", "b"):
            assert get(key) == key * 4
        assert reads == ["a", "b", "c", "b"]  # c's 4 made 12 of 10: b, the least recent, went
    finally:
        if cache.listener is not None:
            cache.listener.stop()
