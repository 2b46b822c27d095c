"""What page blueprints answer alike: a list above the form adding to it, a secret shown once."""

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


def list_and_form(template, listing, values, errors, status=200, **context):
    """A page of records (`listing(page_args)` gives them) above the form that adds one."""
    items, next_cursor = listing(page_args())
    page = render_template(
        template, items=items, next_cursor=next_cursor, values=values, errors=errors, **context
    )
    return page, status
