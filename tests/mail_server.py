"""A real SMTP server on 127.0.0.1 for the notification tests and benchmark: aiosmtpd with
STARTTLS required on a self-signed certificate, and AUTH (LOGIN/PLAIN) required after it."""

import asyncio
import datetime
import email
import email.policy
import ipaddress
import socket
import ssl
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

USER, PASSWORD = "hub", "mail-password-for-tests"


def self_signed(folder):
    """A certificate for 127.0.0.1 and its key, written in `folder`; (cert path, key path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = Path(folder) / "smtp-cert.pem", Path(folder) / "smtp-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Inbox:
    """The server's handler: keeps every message with its envelope and the time it came.

    `refuse` (an SMTP reply such as "451 4.3.0 Try later") refuses recipients while set;
    `hold` makes the server keep a message, then wait for `released` before answering 250."""

    def __init__(self):
        self.messages = []  # (envelope recipients, parsed message, time.time())
        self.refuse = None
        self.hold = False
        self.held = threading.Event()
        self.released = threading.Event()
        self._lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append((list(envelope.rcpt_tos), message, time.time()))
        if self.hold:
            self.held.set()
            await asyncio.get_running_loop().run_in_executor(None, self.released.wait)
        return "250 Message accepted for delivery"

    def wait_for(self, count, timeout=10):
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def to(self, address):
        return [message for rcpt, message, _ in self.messages if address in rcpt]


def _authenticate(server, session, envelope, mechanism, auth_data):
    good = auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
    return AuthResult(success=good)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MailServer:
    """Run an Inbox on a free port of 127.0.0.1; `url` is the hub's SMTP_URL for it."""

    def __init__(self, folder, implicit_tls=False):
        self.cert, key = self_signed(folder)
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.load_cert_chain(self.cert, key)
        self.inbox = Inbox()
        self.implicit_tls = implicit_tls
        # STARTTLS required on a plain connection, or TLS from the first byte (smtps)
        tls = {"ssl_context": self.tls} if implicit_tls else {"tls_context": self.tls}
        self.controller = Controller(
            self.inbox,
            hostname="127.0.0.1",
            port=_free_port(),
            require_starttls=not implicit_tls,
            authenticator=_authenticate,
            # aiosmtpd does not count smtps' TLS as TLS for AUTH: the whole session is TLS anyway
            auth_require_tls=not implicit_tls,
            **tls,
        )

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.inbox.released.set()
        self.controller.stop()

    @property
    def port(self):
        return self.controller.port

    @property
    def url(self):
        scheme = "smtps" if self.implicit_tls else "smtp"
        return f"{scheme}://{USER}:{PASSWORD}@127.0.0.1:{self.port}"

    def settings(self):
        """The hub's settings that send to this server and trust its certificate."""
        return {"SMTP_URL": self.url, "SMTP_CA_FILE": str(self.cert)}
