"""Linking a person's Telegram chat: they send the hub's bot the one-time code shown on their
notifications page; the worker reads the bot's new messages (getUpdates) and links the chat."""

import contextlib
import logging
import re

import requests
from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _

from ..auth.models import User
from ..extensions import db
from . import service
from .channels import TelegramChannel

log = logging.getLogger(__name__)
CODE = re.compile(r"\b([0-9A-Fa-f]{8})\b")


def link_new_chats():
    """Read the bot's messages since the last read and link the chats that sent a valid code;
    returns how many were linked. Telegram forgets the messages read before `offset`."""
    notifier = current_app.extensions["hub_notifier"]
    bot = TelegramChannel(current_app.config)
    try:
        status, answer = bot.call("getUpdates", offset=notifier.telegram_offset, timeout=0)
    except requests.RequestException as exc:
        log.warning("Telegram getUpdates failed: %s", type(exc).__name__)
        return 0
    if status != 200 or not answer.get("ok"):
        log.warning("Telegram getUpdates answered %s", status)
        return 0
    linked = 0
    for update in answer.get("result", []):
        notifier.telegram_offset = update["update_id"] + 1
        message = update.get("message") or {}
        found = CODE.search(message.get("text") or "")
        chat = (message.get("chat") or {}).get("id")
        if not found or chat is None:
            continue
        address = service.link_telegram(found.group(1), chat)
        if address is not None:
            linked += 1
            _confirm(bot, address)
    return linked


def _confirm(bot, address):
    user = db.session.get(User, address.user_id)
    with force_locale(user.language if user else "km"):
        text = _("This chat now receives your Referral Hub notifications.")
    with contextlib.suppress(requests.RequestException):  # the link holds all the same
        bot.call("sendMessage", chat_id=address.address, text=text)
