"""The one clock of the hub, so tests can move time."""

from datetime import UTC, datetime

_frozen = None


def now():
    """Current time, timezone-aware UTC."""
    return _frozen or datetime.now(UTC)


def freeze(moment):
    """Pin the clock (tests only); None lets it run again."""
    global _frozen
    _frozen = moment
