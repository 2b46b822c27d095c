"""Names of categories, areas and languages in the language of the page."""

from babel import Locale
from flask_babel import get_locale

from ..directory import reference


def language():
    return str(get_locale() or "km")


def category_name(code):
    term = reference.terms_by_code().get(code)
    return term["name"].get(language(), term["name"]["en"]) if term else code


def area_name(code):
    area = reference.areas_by_code().get(code)
    return area[f"name_{language()}"] if area else code


def language_name(code):
    return Locale.parse(language()).languages.get(code, code)


def category_options():
    return [(term["code"], category_name(term["code"])) for term in reference.taxonomy()["terms"]]


def province_options():
    return [(p["code"], area_name(p["code"])) for p in reference.provinces()]


def districts_by_province():
    """[(province name, [(district code, district name)])] for grouped choices."""
    return [
        (area_name(p["code"]), [(d["code"], area_name(d["code"])) for d in p["districts"]])
        for p in reference.provinces()
    ]


def area_and_category_choices():
    """The choices of a form asking for needs and a place: categories, provinces, districts."""
    return {
        "categories": category_options(),
        "provinces": province_options(),
        "districts": districts_by_province(),
    }


HELPERS = {
    "category_name": category_name,
    "area_name": area_name,
    "language_name": language_name,
}
