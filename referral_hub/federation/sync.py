"""Pulling a peer's directory: its HSDS API, only what changed since the last sync (removals
included), read whole before anything is applied. A failure changes nothing and is retried
with backoff; bad data is kept on the peer's record for its page."""

import logging
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from flask import current_app

from .. import clock
from ..audit import service as audit
from ..directory.models import Service
from ..extensions import db
from . import mirror, remote
from .models import Peer

log = logging.getLogger(__name__)
PAGE_SIZE = 100
MAX_PAGES = 1000  # 100,000 services: a peer answering forever is a fault, not a directory
BACKOFF_MINUTES = (1, 5, 15, 60, 240)
# A change is stamped when it is written, not when it commits: one committed just after a
# sync read past it would be missed for good. Each sync asks again for this much before the
# moment (the peer's clock) the last one began; what it had already is recognised by its
# digest and skipped.
OVERLAP = timedelta(minutes=5)


class SyncFailed(Exception):
    """The sync stopped; nothing of it was applied."""


def _pages(api, since):
    """Every entry changed since `since` (all of them the first time), page after page."""
    params = {"full": "true", "per_page": PAGE_SIZE}
    if since:
        params["modified_after"] = (datetime.fromisoformat(since) - OVERLAP).isoformat()
    entries, began = [], None
    for page in range(1, MAX_PAGES + 1):
        body, response = api.call("GET", "/hsds/services", params={**params, "page": page})
        began = began or _served_at(response)
        contents = body.get("contents")
        if not isinstance(contents, list):
            raise SyncFailed(f"Page {page} of the peer's services has no contents list.")
        entries += contents
        if body.get("last_page", True) or not contents:
            return entries, began
    raise SyncFailed(f"The peer's services run past {MAX_PAGES} pages.")


def _served_at(response):
    """The peer's clock when it served the first page (its Date header), as ISO 8601."""
    try:
        return parsedate_to_datetime(response.headers["Date"]).isoformat()
    except (KeyError, TypeError, ValueError):
        return None


def _retire_missing(peer, entries):
    """A full listing names every service the peer has: the others are gone there."""
    listed = {entry.get("id") for entry in entries}
    gone = db.session.scalars(
        db.select(Service).where(Service.peer_id == peer.id, Service.status != "defunct")
    ).all()
    gone = [service for service in gone if service.id not in listed]
    for service in gone:
        service.status, service.peer_digest = "defunct", None
    return len(gone)


def _watermark(began, entries, current):
    """Where the next sync starts: when this one began at the peer, or failing its Date
    header, the latest change seen."""
    stamps = [e["last_modified"] for e in entries if isinstance(e.get("last_modified"), str)]
    return began or max(stamps, default=current)


def sync(peer_id):
    """Pull and apply one peer's changes; returns the outcome, kept on the peer as well."""
    peer = db.session.get(Peer, peer_id)
    started, since = clock.now(), peer.sync_watermark
    try:
        entries, began = _pages(remote.Peer(peer), since)
        counts = mirror.apply(peer, entries)
        if since is None:
            counts["removed"] += _retire_missing(peer, entries)
    except (remote.PeerUnreachable, SyncFailed, mirror.BadPeerData) as exc:
        db.session.rollback()
        return _failed(db.session.get(Peer, peer_id), started, exc)
    peer.sync_watermark = _watermark(began, entries, since)
    peer.sync_failures, peer.last_sync_at = 0, started
    peer.next_sync_at = started + timedelta(minutes=current_app.config["PEER_SYNC_MINUTES"])
    peer.last_sync_outcome = {"ok": True, "at": started.isoformat(), **counts}
    audit.record("system", None, "peer.synced", "peer", peer.id, {"count": len(entries)})
    db.session.commit()
    return peer.last_sync_outcome


def _failed(peer, started, exc):
    peer.sync_failures += 1
    wait = BACKOFF_MINUTES[min(peer.sync_failures, len(BACKOFF_MINUTES)) - 1]
    peer.next_sync_at = started + timedelta(minutes=wait)
    peer.last_sync_at = started
    peer.last_sync_outcome = {
        "ok": False,
        "at": started.isoformat(),
        "error": str(exc),
        "problems": getattr(exc, "errors", None) or [],
    }
    db.session.commit()
    log.warning("sync of peer %s failed: %s", peer.id, exc)
    return peer.last_sync_outcome


def sync_due():
    """Every active added peer whose next sync is due (the scheduler's job)."""
    due = db.session.scalars(
        db.select(Peer.id).where(
            Peer.status == "active", Peer.url.is_not(None), Peer.next_sync_at <= clock.now()
        )
    ).all()
    return {peer_id: sync(peer_id) for peer_id in due}
