"""Standard Webhooks signatures: how a partner proves a callback really came from the hub.

Scheme (https://www.standardwebhooks.com/): headers ``webhook-id``, ``webhook-timestamp``
(Unix seconds) and ``webhook-signature`` (space-separated ``v1,<base64 HMAC-SHA256>``
entries, several during a secret rotation). The HMAC covers ``{id}.{timestamp}.{body}``
and its key is the base64 part of the ``whsec_...`` secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import hmac
import json
import re
import threading
import time
from collections.abc import Mapping
from email.message import Message
from typing import Any

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
MIN_KEY_BYTES = 24  # the specification's minimum for HMAC secrets
MAX_HEADER_CHARS = 4096  # far above any honest header; bounds the work an attacker can cause
HEADER_NAMES = ("webhook-id", "webhook-timestamp", "webhook-signature")
_TIMESTAMP = re.compile(r"[0-9]{1,15}")
# Printable ASCII without "." or spaces: a dot in the id would make "{id}.{ts}.{body}" ambiguous.
_MSG_ID = re.compile(r"[\x21-\x2d\x2f-\x7e]{1,256}")


class WebhookVerificationError(Exception):
    """A callback that must not be trusted; ``reason`` says why in one machine-readable word.

    Reasons: missing_header, malformed_header, bad_secret, stale, future, bad_signature,
    bad_body (not a UTF-8 JSON object) and replayed.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def decode_secret(secret: str) -> bytes:
    """Turn a ``whsec_<base64>`` secret into HMAC key bytes, refusing anything else."""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise WebhookVerificationError("bad_secret", "secrets look like whsec_<base64>")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("bad_secret", "not base64 after whsec_") from None
    if len(key) < MIN_KEY_BYTES:
        raise WebhookVerificationError("bad_secret", f"key shorter than {MIN_KEY_BYTES} bytes")
    return key


def _signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """Base64 HMAC-SHA256 of the signed content, shared by sign() and verify()."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode("ascii")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Return the ``v1,<signature>`` entry a sender puts in ``webhook-signature``."""
    return "v1," + _signature(decode_secret(secret), msg_id, timestamp, body)


class ReplayGuard:
    """Remembers verified webhook-ids until their timestamp leaves the tolerance window.

    A captured callback replayed within the window carries the same id and is refused;
    after the window its timestamp is refused anyway, so the id can be forgotten. Memory
    is bounded by ``max_entries``: beyond it the ids closest to expiry are dropped first.
    Thread-safe.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def add(self, msg_id: str, expires_at: float, now: float | None = None) -> bool:
        """Record ``msg_id`` until ``expires_at``; False if it is already recorded (a replay)."""
        now = time.time() if now is None else now
        with self._lock:
            while self._heap and self._heap[0][0] <= now:
                del self._expiry[heapq.heappop(self._heap)[1]]
            if msg_id in self._expiry:
                return False
            if self._heap and len(self._expiry) >= self.max_entries:
                del self._expiry[heapq.heappop(self._heap)[1]]
            self._expiry[msg_id] = expires_at
            heapq.heappush(self._heap, (expires_at, msg_id))
            return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiry)


def _webhook_headers(headers: Mapping[str, Any] | Message | None) -> dict[str, str]:
    """Pick the three webhook headers out of any header container, ignoring case."""
    if headers is None:
        raise WebhookVerificationError("missing_header", "no headers")
    try:
        items = list(headers.items())
    except Exception:
        raise WebhookVerificationError("malformed_header", "headers are not a mapping") from None
    found: dict[str, str] = {}
    for name, value in items:
        if not isinstance(name, str) or name.lower() not in HEADER_NAMES or value is None:
            continue
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        if not isinstance(value, str) or len(value) > MAX_HEADER_CHARS:
            raise WebhookVerificationError("malformed_header", f"{name} is not a short string")
        value = value.strip()
        if found.setdefault(name.lower(), value) != value:
            raise WebhookVerificationError("malformed_header", f"{name} given twice")
    for name in HEADER_NAMES:
        if not found.get(name):
            raise WebhookVerificationError("missing_header", name)
    return found


def _candidates(header: str) -> list[bytes]:
    """The v1 signatures of a ``webhook-signature`` header; other versions are skipped."""
    entries = header.split()
    if not all("," in entry for entry in entries):
        raise WebhookVerificationError("malformed_header", "webhook-signature entries are v,sig")
    return [
        entry.partition(",")[2].encode("utf-8", "replace")
        for entry in entries
        if entry.startswith("v1,")
    ]


def verify(
    secret: str | list[str],
    headers: Mapping[str, Any] | Message | None,
    body: bytes | str,
    tolerance: int = 300,
    replay_guard: ReplayGuard | None = None,
    now: float | None = None,
) -> dict:
    """Check a callback's signature and freshness and return its JSON body.

    ``secret`` may be a list (during a rotation any of them may have signed). Headers are
    matched case-insensitively; any object with ``items()`` works. Replays are refused
    only when a ``replay_guard`` is passed: there is no hidden module-level guard, because
    its memory would be per process and would silently differ between workers. Answer a
    ``replayed`` callback with 2xx: the hub already delivered it. Raises only
    WebhookVerificationError.
    """
    secrets = [secret] if isinstance(secret, str) else secret
    if not isinstance(secrets, list | tuple) or not secrets:
        raise WebhookVerificationError("bad_secret", "give a secret or a list of secrets")
    keys = [decode_secret(s) for s in secrets]

    found = _webhook_headers(headers)
    msg_id = found["webhook-id"]
    if not _MSG_ID.fullmatch(msg_id):
        raise WebhookVerificationError("malformed_header", "webhook-id")
    if not _TIMESTAMP.fullmatch(found["webhook-timestamp"]):
        raise WebhookVerificationError("malformed_header", "webhook-timestamp is not an integer")
    timestamp = int(found["webhook-timestamp"])
    candidates = _candidates(found["webhook-signature"])

    now = time.time() if now is None else now
    if timestamp < now - tolerance:
        raise WebhookVerificationError("stale", "webhook-timestamp too old")
    if timestamp > now + tolerance:
        raise WebhookVerificationError("future", "webhook-timestamp too far ahead")

    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    if not isinstance(body, bytes | bytearray | memoryview):
        raise WebhookVerificationError("bad_body", "body must be bytes or str")
    body = bytes(body)
    expected = [_signature(key, msg_id, timestamp, body).encode("ascii") for key in keys]
    # Compare every pair without stopping early, so timing reveals nothing about which matched.
    matched = False
    for wanted in expected:
        for given in candidates:
            matched |= hmac.compare_digest(wanted, given)
    if not matched:
        raise WebhookVerificationError("bad_signature", "no signature matches")

    try:
        payload = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        raise WebhookVerificationError("bad_body", "body is not UTF-8 JSON") from None
    if not isinstance(payload, dict):
        raise WebhookVerificationError("bad_body", "body is not a JSON object")

    if replay_guard is not None and not replay_guard.add(msg_id, timestamp + tolerance, now):
        raise WebhookVerificationError("replayed", "webhook-id already verified")
    return payload
