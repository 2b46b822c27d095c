"""The network's taxonomy and Cambodia's areas, read once from the data in directory/."""

import json
from functools import cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent.parent / "directory"


@cache
def taxonomy():
    return json.loads((DATA_DIR / "taxonomy.json").read_text(encoding="utf-8"))


@cache
def terms_by_code():
    return {term["code"]: term for term in taxonomy()["terms"]}


@cache
def provinces():
    return json.loads((DATA_DIR / "areas.json").read_text(encoding="utf-8"))["provinces"]


@cache
def areas_by_code():
    """Every province and district by code, each with its parent's code."""
    found = {}
    for province in provinces():
        found[province["code"]] = {**province, "parent": None}
        for district in province["districts"]:
            found[district["code"]] = {**district, "parent": province["code"]}
    return found


@cache
def matching_area_codes(code):
    """Codes of the areas a search for this area finds: the area, its province (a service
    covering the province covers its districts) and its districts. An explicit list, so that an
    index on the area code serves the search under any database collation."""
    area = areas_by_code()[code]
    if area["parent"]:
        return (code, area["parent"])
    return (code, *(d["code"] for d in area["districts"]))


def is_province(code):
    return len(code) == 2 and code in areas_by_code()


def unknown_categories(codes):
    return sorted(set(codes) - terms_by_code().keys())


def unknown_areas(codes):
    return sorted(set(codes) - areas_by_code().keys())


def category_names(codes):
    """English and Khmer names of categories, for text search."""
    terms = terms_by_code()
    return " ".join(
        f"{terms[c]['name']['en']} {terms[c]['name']['km']}" for c in codes if c in terms
    )
