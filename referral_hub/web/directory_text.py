"""A directory entry's own words (names, descriptions) in the reader's language.

The directory keeps them in English and, once someone writes them, in Khmer. A Khmer page
without the Khmer shows the English marked lang="en", so that a screen reader reads it as
English and the browser picks a Latin font for it.
"""

from flask_babel import get_locale
from markupsafe import Markup


def local_text(english, khmer):
    """`khmer` on a Khmer page when it is written, else `english` (marked on a Khmer page)."""
    if str(get_locale()) != "km":
        return english
    if khmer:
        return khmer
    if not english:
        return english
    return Markup('<span lang="en">%s</span>') % english
