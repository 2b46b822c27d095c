"""The channels a message goes out by, behind one interface: `send(outgoing) -> Answer`.

E-mail over SMTP (`SMTP_URL`: smtp:// with STARTTLS, or smtps://), or written as .eml files
under instance/mail/ in development; Telegram through the Bot API (`TELEGRAM_API_URL`). A
channel keeps its connection between messages of one pass and is used by one thread."""

import contextlib
import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import requests

from .. import clock
from ..config import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outgoing:
    """One message to send: its Message-ID, its reader's address and its content."""

    message_id: str
    address: str
    content: object  # content.Content


@dataclass(frozen=True)
class Answer:
    """What one attempt got. `permanent`: no retry will help (the address is refused)."""

    ok: bool
    error: str | None = None
    permanent: bool = False


def _message_id(config, message_id):
    domain = urlsplit(config["HUB_ISSUER"]).hostname or "referral-hub.invalid"
    return f"<{message_id}@{domain}>"


def email_message(config, outgoing):
    """The e-mail: plain text and HTML alternatives, its Message-ID the same on every retry."""
    content = outgoing.content
    message = EmailMessage()
    message["Subject"] = content.subject
    message["From"] = config["MAIL_FROM"]
    message["To"] = outgoing.address
    message["Date"] = format_datetime(clock.now())
    message["Message-ID"] = _message_id(config, outgoing.message_id)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(content.text)
    message.add_alternative(content.html, subtype="html")
    message["Content-Language"] = content.language  # after: the parts take Content-* headers
    return message


class SMTPChannel:
    """E-mail through an SMTP server, authenticated, over STARTTLS or implicit TLS."""

    name = "email"

    def __init__(self, config):
        parts = urlsplit(config["SMTP_URL"])
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigError("SMTP_URL must be smtp://user:password@host:587 or smtps://...:465.")
        self.config = config
        self.implicit_tls = parts.scheme == "smtps"
        self.host = parts.hostname
        self.port = parts.port or (465 if self.implicit_tls else 587)
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.tls = ssl.create_default_context(cafile=config.get("SMTP_CA_FILE") or None)
        self.timeout = config["NOTIFY_SEND_TIMEOUT"]
        self._smtp = None

    def _connect(self):
        if self.implicit_tls:
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self.tls)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            smtp.starttls(context=self.tls)  # never in clear: refused if the server cannot
        if self.user:
            smtp.login(self.user, self.password or "")
        return smtp

    def send(self, outgoing):
        try:
            if self._smtp is None:
                self._smtp = self._connect()
            self._smtp.send_message(email_message(self.config, outgoing))
            return Answer(True)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            return self._refused(code, text)
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            return self._refused(exc.smtp_code, exc.smtp_error)
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            self.close()
            return Answer(False, f"connection: {type(exc).__name__}: {exc}"[:200])

    def _refused(self, code, text):
        """A 5xx answer is final for this address; a 4xx one is tried again later."""
        self.close()  # the next message starts on a clean connection
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        return Answer(False, f"{code} {text}"[:200], permanent=500 <= code < 600)

    def close(self):
        if self._smtp is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._smtp.quit()
            self._smtp = None


class MailboxChannel:
    """Development: each e-mail is written as an .eml file under instance/mail/."""

    name = "email"

    def __init__(self, config, folder):
        self.config = config
        self.folder = Path(folder)

    def send(self, outgoing):
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = clock.now().strftime("%Y%m%dT%H%M%S")
        path = self.folder / f"{stamp}-{outgoing.message_id}.eml"
        path.write_bytes(email_message(self.config, outgoing).as_bytes())
        return Answer(True)

    def close(self):
        pass


class TelegramChannel:
    """Messages to linked Telegram chats through the Bot API (sendMessage)."""

    name = "telegram"

    def __init__(self, config):
        self.base = f"{config['TELEGRAM_API_URL'].rstrip('/')}/bot{config['TELEGRAM_BOT_TOKEN']}"
        self.timeout = config["NOTIFY_SEND_TIMEOUT"]
        self.http = requests.Session()

    def call(self, method, **fields):
        """One Bot API call; its JSON answer (raises requests' errors)."""
        response = self.http.post(f"{self.base}/{method}", json=fields, timeout=self.timeout)
        try:
            answer = response.json()
        except ValueError:
            answer = {"ok": False, "description": response.text[:100]}
        return response.status_code, answer

    def send(self, outgoing):
        content = outgoing.content
        try:
            status, answer = self.call(
                "sendMessage",
                chat_id=outgoing.address,
                text=content.text[:4000],
                disable_web_page_preview=True,
            )
        except requests.RequestException as exc:
            return Answer(False, f"connection: {type(exc).__name__}")
        if status == 200 and answer.get("ok"):
            return Answer(True)
        error = f"{status} {answer.get('description', '')}"[:200]
        # 403: the person blocked the bot; 400: no such chat. Retrying will not help.
        return Answer(False, error, permanent=status in (400, 403))

    def close(self):
        pass


def configured(config, instance_path):
    """The channels this configuration turns on, by name, each a factory of a new channel."""
    found = {}
    if config.get("SMTP_URL"):
        SMTPChannel(config)  # a bad URL is refused at start
        found["email"] = lambda: SMTPChannel(config)
    elif config["HUB_ENV"] == "development":
        folder = Path(instance_path) / "mail"
        found["email"] = lambda: MailboxChannel(config, folder)
    if config.get("TELEGRAM_BOT_TOKEN"):
        found["telegram"] = lambda: TelegramChannel(config)
    return found
