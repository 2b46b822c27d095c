"""Act in this process once a transaction commits, for what the transaction marked."""

from flask import current_app, has_app_context
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.orm import Session

from .extensions import db

_ACTIONS = {}  # mark -> function of the app's extensions, run after a commit that set it


def after_commit(mark, action):
    """Register action(extensions), run after each commit of a transaction marked `mark`."""
    _ACTIONS[mark] = action


def mark(name, session=None):
    """Mark the current transaction (of `session`, else db.session); returns whether it was
    marked already."""
    info = (session or db.session).info
    marked = info.get(name, False)
    info[name] = True
    return marked


@sqlalchemy_event.listens_for(Session, "after_commit")
def _act(session):
    for name, action in _ACTIONS.items():
        if session.info.pop(name, False) and has_app_context():
            action(current_app.extensions)


@sqlalchemy_event.listens_for(Session, "after_rollback")
def _forget(session):
    for name in _ACTIONS:
        session.info.pop(name, None)
