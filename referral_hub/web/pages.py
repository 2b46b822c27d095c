"""What several page blueprints answer alike: the page of a list asked for, a secret shown once."""

from flask import render_template, request

from ..pagination import PageArgs

NO_STORE = {"Cache-Control": "no-store"}


def page_args():
    """The page of a list a page shows: only its cursor comes from the address."""
    cursor = request.args.get("cursor")
    return PageArgs().load({"cursor": cursor} if cursor else {})


def shown_once(template, **context):
    """A page with a secret on it: never stored by the browser or a proxy."""
    return render_template(template, **context), 200, NO_STORE
