"""A callback endpoint that verifies and records the hub's signed callbacks.

Partners run it to see what the hub sends before wiring their own system; the hub's
tests and load scripts use it as a real partner, with injected failures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from .signature import WebhookVerificationError, decode_secret, verify

PATH = "/callbacks"
KEPT_HEADERS = (
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "content-type",
    "user-agent",
)
INJECTED = ("fail_with", "failure_rate")
DRAIN_LIMIT = 16 << 20  # oversized bodies up to this are read and dropped before the 413
SECRET_ENV = "REFERRAL_HUB_CALLBACK_SECRET"  # noqa: S105 (a variable name, not a secret)
log = logging.getLogger(__name__)


class CallbackReceiver:
    """Answers POST /callbacks: 204 for a new verified event, 200 for a duplicate id, 4xx/5xx else.

    Everything it sees is recorded (``events``, ``duplicates``, ``rejected``, ``requests``)
    and safe to read from other threads. ``fail_with`` (status codes answered, in order, to
    the next requests) and ``failure_rate`` (503 to that random fraction of valid callbacks,
    repeatable with ``seed``) let tests and load scripts exercise the hub's retries.
    """

    def __init__(
        self,
        secrets: str | list[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token_validator: Callable[[str], bool] | None = None,
        store_path: str | os.PathLike[str] | None = None,
        failure_rate: float = 0.0,
        seed: int | None = None,
        fail_with: Iterable[int] = (),
        retry_after: int | None = None,
        max_body: int = 1 << 20,
        tolerance: int = 300,
    ) -> None:
        self.secrets = [secrets] if isinstance(secrets, str) else list(secrets)
        if not self.secrets:
            raise ValueError("give at least one whsec_ secret")
        for secret in self.secrets:
            decode_secret(secret)  # a bad secret fails here, not on every callback
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError("failure_rate is a fraction between 0 and 1")
        self.host = host
        self.port = port
        self.token_validator = token_validator
        self.store_path = Path(store_path) if store_path else None
        self.failure_rate = failure_rate
        self.retry_after = retry_after
        self.max_body = max_body
        self.tolerance = tolerance
        self._fail_with = deque(fail_with)
        self._random = random.Random(seed)
        self._cond = threading.Condition()
        self._events: list[dict[str, Any]] = []
        self._ids: set[str] = set()
        self._duplicates = 0
        self._rejected: list[tuple[str, int]] = []
        self._requests = 0
        self._store: IO[str] | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        if self.store_path and self.store_path.exists():
            self._load(self.store_path)

    def _load(self, path: Path) -> None:
        """Take back the events a previous run stored, so duplicates stay duplicates."""
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line cut short when a previous run was killed
            msg_id = event.get("webhook_id") if isinstance(event, dict) else None
            if isinstance(msg_id, str) and msg_id not in self._ids:
                self._ids.add(msg_id)
                self._events.append(event)

    # Lifecycle

    def start(self) -> CallbackReceiver:
        """Listen in a daemon thread; ``url`` is known from here on."""
        if self._server is not None:
            raise RuntimeError("receiver already started")
        self._server = _Server((self.host, self.port), self)
        if self.store_path:
            self._store = self.store_path.open("a", encoding="utf-8")
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # how quickly stop() is noticed
            name="callback-receiver",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and close the store file."""
        if self._server is None or self._thread is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = self._thread = None
        with self._cond:
            if self._store:
                self._store.close()
                self._store = None

    def __enter__(self) -> CallbackReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The callback URL to register with the hub."""
        if self._server is None:
            raise RuntimeError("receiver not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{PATH}"

    # What was received

    @property
    def events(self) -> list[dict[str, Any]]:
        """Stored events, oldest first: webhook_id, timestamp, received_at, payload, headers."""
        with self._cond:
            return list(self._events)

    @property
    def duplicates(self) -> int:
        with self._cond:
            return self._duplicates

    @property
    def rejected(self) -> list[tuple[str, int]]:
        """(reason, status) of every answer that was not 2xx, injected failures included."""
        with self._cond:
            return list(self._rejected)

    @property
    def requests(self) -> int:
        with self._cond:
            return self._requests

    def wait_for(self, count: int, timeout: float = 10) -> bool:
        """Block until at least ``count`` distinct events are stored; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._events) >= count, timeout)

    # Request handling

    def _record(self, status: int, reason: str) -> None:
        """Count one answered request."""
        with self._cond:
            self._requests += 1
            if status >= 300:
                self._rejected.append((reason, status))

    def _handle(self, path: str, headers: Message, body: bytes) -> tuple[int, str]:
        """Decide the answer to one callback as (status, reason) and record the event."""
        if path != PATH:
            return 404, "not_found"
        with self._cond:
            if self._fail_with:
                return self._fail_with.popleft(), "fail_with"
        if self.token_validator is not None:
            problem = _bearer_problem(self.token_validator, headers.get("Authorization"))
            if problem:
                return 401, problem
        try:
            payload = verify(self.secrets, headers, body, tolerance=self.tolerance)
        except WebhookVerificationError as exc:
            return 400, exc.reason
        msg_id = headers["webhook-id"].strip()
        with self._cond:
            if self.failure_rate and self._random.random() < self.failure_rate:
                return 503, "failure_rate"
            if msg_id in self._ids:
                self._duplicates += 1
                return 200, "duplicate"
            event = {
                "webhook_id": msg_id,
                "timestamp": int(headers["webhook-timestamp"]),
                "received_at": time.time(),
                "payload": payload,
                "headers": {name: headers[name] for name in KEPT_HEADERS if name in headers},
            }
            if self._store:
                self._store.write(json.dumps(event, ensure_ascii=False) + "\n")
                self._store.flush()
            self._ids.add(msg_id)
            self._events.append(event)
            self._cond.notify_all()
        log.info("stored callback %s (%s)", msg_id, payload.get("type"))
        return 204, "stored"


def _bearer_problem(validator: Callable[[str], bool], authorization: str | None) -> str | None:
    """None if the request's bearer token is accepted, else the reason for a 401."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return "missing_token"
    try:
        accepted = validator(token.strip())
    except Exception:
        log.exception("token_validator failed; refusing the token")
        accepted = False
    return None if accepted else "invalid_token"


class _Server(ThreadingHTTPServer):
    """The HTTP server, pointing back at its receiver."""

    daemon_threads = True
    request_queue_size = 128  # load tests open many connections at once

    def __init__(self, address: tuple[str, int], receiver: CallbackReceiver) -> None:
        self.receiver = receiver
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    """Reads one request within the size limit and writes the receiver's answer."""

    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "referral-hub-kit"
    timeout = 30  # a silent client must not hold a thread forever
    disable_nagle_algorithm = True  # headers and body go out as separate writes

    def do_POST(self) -> None:
        receiver = self.server.receiver
        length = self.headers.get("Content-Length", "")
        if "Transfer-Encoding" in self.headers or not length:
            return self._reply(411, "length_required", close=True)
        if not (length.isascii() and length.isdigit()):
            return self._reply(400, "bad_length", close=True)
        if int(length) > receiver.max_body:
            if int(length) <= DRAIN_LIMIT:
                self._discard(int(length))  # read it, or the client may see a reset, not the 413
            return self._reply(413, "too_large", close=True)
        body = self.rfile.read(int(length))
        try:
            status, reason = receiver._handle(urlsplit(self.path).path, self.headers, body)
        except Exception:
            log.exception("callback handling failed")
            status, reason = 500, "internal_error"
        self._reply(status, reason)

    def _discard(self, size: int) -> None:
        """Read and drop ``size`` bytes of request body."""
        while size > 0:
            chunk = self.rfile.read(min(size, 1 << 16))
            if not chunk:
                return
            size -= len(chunk)

    def _reply(self, status: int, reason: str, close: bool = False) -> None:
        """Answer with an empty 204 or a short JSON problem document, and count the request."""
        receiver = self.server.receiver
        receiver._record(status, reason)
        self.send_response(status)
        if status == 401:
            error = ' error="invalid_token"' if reason == "invalid_token" else ""
            self.send_header("WWW-Authenticate", "Bearer" + error)
        if reason in INJECTED and receiver.retry_after is not None:
            self.send_header("Retry-After", str(receiver.retry_after))
        if close:
            self.close_connection = True
            self.send_header("Connection", "close")
        if status == 204:
            self.end_headers()
            return
        try:
            title = HTTPStatus(status).phrase
        except ValueError:
            title = "Status"
        body = json.dumps({"title": title, "status": status, "detail": reason}).encode()
        kind = "application/problem+json" if status >= 400 else "application/json"
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def version_string(self) -> str:
        return self.server_version  # without the Python version

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


def main(argv: list[str] | None = None) -> None:
    """Run a receiver in the foreground until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m referral_hub_kit.receiver",
        description="Receive, verify and record Referral Hub status callbacks.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8085)
    parser.add_argument(
        "--secret",
        action="append",
        help=f"whsec_ secret (repeat during a rotation); default: ${SECRET_ENV}",
    )
    parser.add_argument("--store", help="append received events to this JSON-lines file")
    args = parser.parse_args(argv)
    secrets = args.secret or ([os.environ[SECRET_ENV]] if os.environ.get(SECRET_ENV) else [])
    if not secrets:
        parser.error(f"give --secret or set {SECRET_ENV}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        receiver = CallbackReceiver(secrets, host=args.host, port=args.port, store_path=args.store)
    except WebhookVerificationError as exc:
        parser.error(str(exc))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # `kill` stops it as cleanly as Ctrl-C
    with receiver:
        print(f"Listening on {receiver.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    print(
        f"{len(receiver.events)} events, {receiver.duplicates} duplicates, "
        f"{len(receiver.rejected)} rejected"
    )


if __name__ == "__main__":
    main()
