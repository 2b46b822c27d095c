"""One signed POST to a partner, over a kept-alive connection and within a total timeout."""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import requests

from . import partner_tokens, targets

USER_AGENT = "ReferralHub-Callbacks/1"
EXCERPT = 200
EXCERPT_BYTES = 2048  # read of a partner's answer, to make the excerpt from


@dataclass
class Answer:
    """What one attempt got: a status code, or an error saying why there is none."""

    status_code: int | None = None
    error: str | None = None
    excerpt: str | None = None
    headers: dict = field(default_factory=dict)

    @property
    def succeeded(self):
        return self.status_code is not None and 200 <= self.status_code < 300


def post(partner, body, headers, seconds):
    """POST the signed body; everything, the partner's token included, ends within `seconds`."""
    with targets.deadline(seconds):
        try:
            return _post_checked(partner, body, headers)
        except targets.TargetRefused as exc:
            return Answer(error=f"refused target: {exc}"[:200])
        except partner_tokens.TokenError as exc:
            return Answer(error=f"partner token: {exc}"[:200])
        except requests.Timeout:
            return Answer(error="timeout")
        except requests.RequestException as exc:
            if targets.deadline_passed():  # it broke off a read or a write
                return Answer(error="timeout")
            return Answer(error=f"connection failed: {type(exc).__name__}")


def _post_checked(partner, body, headers):
    targets.check_url(partner.url)  # the rules in force now, not at registration
    http = targets.kept_alive_session()
    answer = _post(http, partner, body, headers, renew_token=False)
    if answer.status_code == 401 and partner.oauth_token_url:
        answer = _post(http, partner, body, headers, renew_token=True)
    if 300 <= answer.status_code < 400:
        answer.error = "redirect not followed"
    return answer


def _post(http, partner, body, headers, renew_token):
    """One POST, with the partner's bearer token when it protects its endpoint with OAuth.

    Only the start of the answer is read: a partner's long answer costs neither memory nor time.
    """
    if partner.oauth_token_url:
        token = partner_tokens.token_for(partner, renew=renew_token)
        headers = {**headers, "authorization": f"Bearer {token}"}
    with http.post(
        partner.url,
        data=body,
        headers=headers,
        timeout=targets.timeouts(),
        allow_redirects=False,
        stream=True,
    ) as response:
        try:
            start = next(response.iter_content(EXCERPT_BYTES), b"")
        except requests.RequestException:
            start = b""  # the status counts even if the body breaks off
        return Answer(
            response.status_code,
            excerpt=_excerpt(start.decode("utf-8", "replace")),
            headers=response.headers,
        )


def _excerpt(text):
    """A short, printable excerpt of what the partner answered; never more."""
    printable = "".join(ch if ch.isprintable() else " " for ch in text or "")
    return " ".join(printable.split())[:EXCERPT] or None


def retry_after(headers):
    """Seconds from a Retry-After header (delay-seconds or HTTP-date), at most a day."""
    value = (headers or {}).get("Retry-After", "").strip()
    if value.isdigit():
        seconds = int(value)
    else:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = (moment - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0), 86400)
