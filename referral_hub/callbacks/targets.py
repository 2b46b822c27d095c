"""Where callbacks may go: only to globally reachable addresses (never loopback, private,
link-local, metadata or special-purpose ones, however an IPv6 address wraps them), unless
the configuration allows them (development and tests); and for how long at most."""

import contextlib
import ipaddress
import socket
import ssl
import threading
import time
from urllib.parse import urlsplit

import requests
from flask import current_app
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

METADATA_HOSTS = {"metadata.google.internal", "metadata"}
# Blocks that are not globally reachable but that Python 3.11's is_global still passes
# (IANA special-purpose registries), and forms refused outright.
NOT_GLOBAL = [
    ipaddress.ip_network(block)
    for block in (
        "192.0.0.0/24",  # IETF protocol assignments (3.11 knows only parts of it)
        "192.88.99.0/24",  # 6to4 relay anycast, deprecated
        "::/96",  # IPv4-compatible IPv6, deprecated: nothing legitimate uses it
        "64:ff9b:1::/48",  # local-use NAT64
        "fec0::/10",  # site-local, deprecated
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # SRv6 segment identifiers
    )
]
SIIT = ipaddress.ip_network("::ffff:0:0:0/96")  # IPv4-translated
NAT64 = ipaddress.ip_network("64:ff9b::/96")
ISATAP_MARK = 0x5EFE  # interface identifier 0000:5efe:a.b.c.d or 0200:5efe:a.b.c.d
KEPT_ALIVE_HOSTS = 256  # partners' hosts each sending thread keeps a connection to
_thread = threading.local()


class TargetRefused(Exception):
    """The URL is not a place the hub will send a callback or token request to."""


def _carried_ipv4(ip):
    """The IPv4 address an IPv6 address leads to, when it is one of the tunnelled forms."""
    low = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in SIIT or ip in NAT64:
        return low
    if ip.sixtofour or ip.teredo:
        return ip.sixtofour or ip.teredo[1]  # Teredo's client address, de-obfuscated
    if (int(ip) >> 32) & 0xFDFFFFFF == ISATAP_MARK:
        return low
    return None


def is_public(ip):
    """Whether an address is globally reachable, and so is every address it carries."""
    if ip.version == 6 and ip.ipv4_mapped:
        return is_public(ip.ipv4_mapped)
    if not ip.is_global or ip.is_multicast or any(ip in block for block in NOT_GLOBAL):
        return False
    carried = _carried_ipv4(ip) if ip.version == 6 else None
    return carried is None or is_public(carried)


def check_url(url):
    """At registration: the shape of the URL (scheme, host) before any lookup."""
    parts = urlsplit(url)
    allowed_schemes = {"https", "http"} if current_app.config["CALLBACK_ALLOW_HTTP"] else {"https"}
    if parts.scheme not in allowed_schemes:
        raise TargetRefused(f"The URL must use {' or '.join(sorted(allowed_schemes))}.")
    if not parts.hostname or parts.username or parts.password:
        raise TargetRefused("The URL needs a host and no credentials.")
    if parts.hostname.lower() in METADATA_HOSTS:
        raise TargetRefused("Cloud metadata addresses are refused.")
    return resolve(url)


def resolve(url):
    """After DNS resolution, at registration and again before each delivery."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except (OSError, ValueError) as exc:
        raise TargetRefused(f"The host {parts.hostname!r} cannot be resolved.") from exc
    addresses = sorted({info[4][0] for info in infos})
    for address in addresses:
        _check_address(address)
    return addresses


def _check_address(address):
    if current_app.config["CALLBACK_ALLOW_PRIVATE_TARGETS"]:
        return
    if not is_public(ipaddress.ip_address(address.split("%")[0])):
        raise TargetRefused("The host resolves to an address that is not public.")


@contextlib.contextmanager
def deadline(seconds):
    """Every request this thread makes meanwhile ends within `seconds`, however slowly the
    partner answers: a timeout alone bounds each read, and a trickle of bytes resets it."""
    _thread.deadline = time.monotonic() + seconds
    try:
        yield
    finally:
        _thread.deadline = None


def _seconds_left():
    until = getattr(_thread, "deadline", None)
    return None if until is None else until - time.monotonic()


def deadline_passed():
    left = _seconds_left()
    return left is not None and left <= 0


def timeouts():
    """(connect, read) timeouts for requests: the configured ones, within the deadline."""
    config = current_app.config
    connect, total = config["CALLBACK_CONNECT_TIMEOUT"], config["CALLBACK_TOTAL_TIMEOUT"]
    left = _seconds_left()
    if left is not None:
        connect, total = min(connect, left), min(total, left)
    return max(connect, 0.001), max(total, 0.001)


class _UntilDeadline:
    """Socket reads and writes that give up when the thread's deadline has passed."""

    __slots__ = ()

    def _before_io(self):
        left = _seconds_left()
        if left is not None:
            if left <= 0:
                raise TimeoutError("the total timeout has passed")
            self.settimeout(left)

    def recv(self, *args, **kwargs):
        self._before_io()
        return super().recv(*args, **kwargs)

    def recv_into(self, *args, **kwargs):
        self._before_io()
        return super().recv_into(*args, **kwargs)

    def sendall(self, *args, **kwargs):
        self._before_io()
        return super().sendall(*args, **kwargs)


class _Socket(_UntilDeadline, socket.socket):
    __slots__ = ()


class _SSLSocket(_UntilDeadline, ssl.SSLSocket):
    __slots__ = ()


class _PeerChecked:
    """Check the address actually connected to: a DNS answer that changed since resolve()
    (DNS rebinding) must not reach a refused address either. Its socket keeps the deadline."""

    def _new_conn(self):
        sock = super()._new_conn()
        try:
            _check_address(sock.getpeername()[0])
        except TargetRefused:
            sock.close()
            raise
        return sock

    def connect(self):
        super().connect()  # the TLS handshake is bounded by the connect timeout as a whole
        if type(self.sock) is socket.socket:
            self.sock.__class__ = _Socket
        elif type(self.sock) is ssl.SSLSocket:
            self.sock.__class__ = _SSLSocket


class _HTTPConnection(_PeerChecked, HTTPConnection):
    pass


class _HTTPSConnection(_PeerChecked, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _CheckedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def session(hosts=10):
    """A requests session for callbacks and partner token requests, checked at connection.

    Environment proxies are not used: the check must see the partner's own address."""
    http = requests.Session()
    http.trust_env = False
    http.mount("http://", _CheckedAdapter(pool_connections=hosts, pool_maxsize=1))
    http.mount("https://", _CheckedAdapter(pool_connections=hosts, pool_maxsize=1))
    return http


def kept_alive_session():
    """This thread's session, which keeps a connection open to each partner it sends to: a new
    TCP (and TLS) connection per callback costs more than the callback."""
    http = getattr(_thread, "session", None)
    if http is None:
        http = _thread.session = session(KEPT_ALIVE_HOSTS)
    return http
