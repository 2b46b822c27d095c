"""Dates and times in one format in both languages: "7 Dec 2026", "7 ធ្នូ 2026, 14:05".

Never "12/7/26", which a Cambodian reader takes for 12 July: the day comes first, the month is a
word, the year has four digits, and the clock runs to 24 hours. Times are the hub's time zone.
"""

from flask_babel import format_date, format_datetime
from flask_babel import gettext as _

DAY = "d MMM y"
DAY_AND_TIME = "d MMM y, HH:mm"


def day(value):
    """7 Dec 2026: a date, or the day of a moment in the hub's time zone."""
    return format_date(value, DAY)


def day_and_time(value):
    """7 Dec 2026, 14:05: a moment in the hub's time zone."""
    return format_datetime(value, DAY_AND_TIME)


def date_format_hint(kind):
    """The format a date field expects, or None for other fields.

    Date fields are plain text fields: a browser's own date field shows its locale's order
    (Chromium shows 09/08/2026 on a Khmer page), which is the ambiguity this module avoids.
    Year-month-day is what the forms parse, and nobody reads it the wrong way round.
    """
    if kind == "date":
        return _("Year-month-day, for example 2026-12-07.")
    if kind == "datetime-local":
        return _("Year-month-day and the time on a 24-hour clock, for example 2026-12-07 14:30.")
    return None


def configure(app):
    app.jinja_env.filters.update(day=day, day_and_time=day_and_time)
    # Flask-Babel's own filters, which a template might still reach for, give the same format.
    app.jinja_env.filters.update(
        dateformat=lambda value, _format=None: day(value),
        datetimeformat=lambda value, _format=None: day_and_time(value),
    )
    app.jinja_env.globals["date_format_hint"] = date_format_hint
