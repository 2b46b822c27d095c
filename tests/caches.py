"""The processes' caches (process_cache.py) in tests."""

from referral_hub.callbacks import subscribers
from referral_hub.extensions import db


def listening(app, name=subscribers.NAME):
    """On PostgreSQL a process keeps what it reads only once it listens for changes."""
    if db.engine.dialect.name == "postgresql":
        listener = app.extensions[name].listener
        assert listener is not None and listener.listening.wait(5)
