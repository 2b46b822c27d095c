"""Messages built from values: English text for the API, a fixed msgid for the pages.

A rule writes `N_("The referral is at version %(version)s; ...", version=3)`. The API and the
logs send the English text; a page translates the msgid (Babel extracts `N_` calls by default)
and fills in the values in the reader's language (`web.messages.translate`).
"""


def spelled(value, name=str):
    """A value as text, a list of codes as "a, b"; `name` says each code (a page's labels)."""
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(str(name(item)) for item in value)
    return name(value)


class Message(str):
    """The English text, remembering the msgid and the values it was made from."""

    msgid: str
    values: dict

    def __new__(cls, msgid, **values):
        message = super().__new__(cls, msgid % {k: spelled(v) for k, v in values.items()})
        message.msgid, message.values = msgid, values
        return message

    def __getnewargs_ex__(self):
        """Copies and pickles are made again from the msgid and the values."""
        return (self.msgid,), self.values


def N_(msgid, **values):
    """Mark a message built from values for the catalog and keep its values for the pages."""
    return Message(msgid, **values)
