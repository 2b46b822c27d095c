"""What page blueprints answer alike: a list above the form adding to it, a secret shown once."""

from flask import render_template, request

from ..pagination import PageArgs


def page_args():
    """The page of a list a page shows: only its cursor comes from the address."""
    cursor = request.args.get("cursor")
    return PageArgs().load({"cursor": cursor} if cursor else {})


def shown_once(template, **context):
    """A page with a secret on it; like every page, sent with Cache-Control: no-store
    (session.not_stored), so no browser or proxy keeps it."""
    return render_template(template, **context)


def list_and_form(template, listing, values, errors, status=200, **context):
    """A page of records (`listing(page_args)` gives them) above the form that adds one."""
    items, next_cursor = listing(page_args())
    page = render_template(
        template, items=items, next_cursor=next_cursor, values=values, errors=errors, **context
    )
    return page, status
