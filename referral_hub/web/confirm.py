"""Drastic actions ask once more: a page saying what will happen and what cannot be undone.

A drastic action's URL answers GET with that page, and its form (carrying `confirmed`) does
the action by POST. A POST without `confirmed`, from a form that skipped the page, is sent to
the page: one mistaken tap never acts. No JavaScript is needed.
"""

from urllib.parse import urlencode

from flask import redirect, render_template, request

CONFIRMED = "confirmed"


def confirmed():
    """Whether the form posted is the confirmation page's own."""
    return request.form.get(CONFIRMED) == "yes"


def ask_first():
    """Send a POST that skipped the confirmation page to that page, with what it carried."""
    query = urlencode(
        [(k, v) for k, v in request.form.items(multi=True) if k not in ("csrf_token", CONFIRMED)]
    )
    return redirect(request.path + (f"?{query}" if query else ""), 303)


def typed_matches(expected):
    """Whether the person typed `expected` (a reference), ignoring case and spaces around it."""
    return request.form.get("typed", "").strip().upper() == expected.strip().upper()


def confirmation_page(
    action, *, title, happens, lasting, button, back, fields=None, typed=None, error=None
):
    """The page asking once more.

    `happens` and `lasting` are lists of plain sentences: what the action does, and what of it
    cannot be undone. `fields` are carried to the POST; `typed` is the text to type to go on.
    """
    page = render_template(
        "confirm.html",
        action=action,
        title=title,
        happens=happens,
        lasting=lasting,
        button=button,
        back=back,
        fields=fields or {},
        typed=typed,
        error=error,
    )
    return page, 422 if error else 200
