"""Every string a page shows has a Khmer translation, with the same placeholders, compiled."""

import re
from pathlib import Path

import marshmallow
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from referral_hub import config
from referral_hub.web.messages import SHOWN_ON_PAGES

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "referral_hub" / "translations" / "km" / "LC_MESSAGES"
METHODS = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def _source_messages():
    keywords = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}
    found = extract_from_dir(ROOT / "referral_hub", METHODS, keywords=keywords)
    return {message for _file, _line, message, _comments, _context in found}


def _catalog():
    with open(CATALOG / "messages.po", "rb") as po:
        return read_po(po, locale="km")


def test_every_message_in_the_code_is_translated_into_khmer():
    catalog = _catalog()
    missing = []
    for message in _source_messages():
        entry = catalog.get(message[0] if isinstance(message, tuple) else message)
        strings = (
            ()
            if entry is None
            else (entry.string if isinstance(entry.string, tuple) else (entry.string,))
        )
        if entry is None or entry.fuzzy or not all(strings):
            missing.append(message)
    assert not missing, f"{len(missing)} messages have no Khmer: {missing[:10]}"


def test_translations_keep_the_placeholders():
    for entry in _catalog():
        if not entry.id:
            continue
        source = entry.id if isinstance(entry.id, tuple) else (entry.id,)
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        expected = set(PLACEHOLDER.findall(" ".join(source))) - {"num"}
        for string in strings:
            assert expected <= set(PLACEHOLDER.findall(string)), entry.id


def _key(value):
    return tuple(value) if isinstance(value, list | tuple) else value


def test_the_compiled_catalog_is_the_one_in_the_po_file():
    with open(CATALOG / "messages.mo", "rb") as mo:
        compiled = {_key(m.id): _key(m.string) for m in read_mo(mo) if m.id}
    written = {_key(m.id): _key(m.string) for m in _catalog() if m.id}
    assert compiled == written, "run: pybabel compile -d referral_hub/translations"


def test_listed_page_messages_still_exist_where_they_come_from():
    texts = [path.read_text(encoding="utf-8") for path in (ROOT / "referral_hub").rglob("*.py")]
    texts += [path.read_text() for path in Path(marshmallow.__file__).parent.rglob("*.py")]
    texts.append(" ".join(config.SCOPES.values()))
    everything = "\n".join(t for t in texts if "SHOWN_ON_PAGES" not in t)
    for message in SHOWN_ON_PAGES:
        words = str(message._args[0]) if hasattr(message, "_args") else str(message)
        head = " ".join(words.split()[:3])  # messages built from values match on their start
        assert head in everything, f"no longer in the code: {words!r}"
