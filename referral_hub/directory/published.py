"""The directory as the API publishes it, kept by each process: a service's document and a
search's page are read once, until the directory changes (process_cache.py).

A change is any write, through a session, to a table that documents or searches are made of:
an ORM flush, or an INSERT, UPDATE or DELETE executed through the session (a peer's sync writes
in bulk). A statement that writes only what is never published says so with the execution
option `publishes=False` (the referral reference counters on organisations). A write that
bypasses the session altogether (SQL typed into psql) shows within CACHE_SECONDS.
"""

from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from .. import process_cache
from ..federation.models import Peer
from . import documents, search
from .models import (
    Contact,
    Location,
    Organization,
    Phone,
    Schedule,
    Service,
    ServiceArea,
    ServiceAtLocation,
    ServiceCategory,
    ServiceLanguage,
)

NAME = "hub_directory"
CHANNEL = "referral_hub_directory"
CACHE_SECONDS = 5.0
CACHE_BYTES = 16 * 1024 * 1024  # of JSON, per process: thousands of documents, or search pages
PUBLISHED_TABLES = frozenset(
    model.__table__
    for model in (
        Service,
        Organization,
        ServiceCategory,
        ServiceArea,
        ServiceLanguage,
        Phone,
        Contact,
        Schedule,
        Location,
        ServiceAtLocation,
        Peer,
    )
)


def cache(app):
    return process_cache.ProcessCache(app, NAME, CHANNEL, CACHE_SECONDS, CACHE_BYTES, weigh=len)


def service_document(service_id, show_confidential):
    """The answer of documents.service_document, as JSON."""
    return _answer(
        ("service", service_id, show_confidential),
        lambda: documents.service_document(service_id, show_confidential),
    )


def search_page(filters, page_args, show_confidential):
    """The answer of a page of search.search_services, as JSON."""

    def read():
        hits, next_cursor = search.search_services(filters, page_args, show_confidential)
        items = [{**hit.pop("service"), **hit} for hit in hits]
        return {"items": items, "next_cursor": next_cursor}

    return _answer(("search", _frozen(filters), _frozen(page_args), show_confidential), read)


def _answer(key, read):
    """A JSON response of the value kept for key, or of read()'s: kept as its JSON, which is
    the smallest copy of it and spares writing it again."""
    body = current_app.extensions[NAME].get(key, lambda: current_app.json.dumps(read()).encode())
    return current_app.response_class(body, mimetype=current_app.json.mimetype)


def _frozen(value):
    """A hashable copy of a request's parsed arguments (dicts, lists and plain values)."""
    if isinstance(value, dict):
        return tuple(sorted((name, _frozen(item)) for name, item in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_frozen(item) for item in value)
    return value


@event.listens_for(Session, "after_flush")
def _flushed(session, _context):
    written = (*session.new, *session.dirty, *session.deleted)
    if any(getattr(type(row), "__table__", None) in PUBLISHED_TABLES for row in written):
        process_cache.changed(NAME, session)


@event.listens_for(Session, "do_orm_execute")
def _executed(state):
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    if state.statement.table in PUBLISHED_TABLES and state.execution_options.get("publishes", True):
        process_cache.changed(NAME, state.session)
