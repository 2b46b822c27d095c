"""Directory search: the area filter's explicit lists and the search by distance in radii."""

import pytest

from referral_hub.directory import reference, search
from referral_hub.directory import service as directory_service
from referral_hub.directory.models import Location
from referral_hub.extensions import db

from .factories import bearer, make_org, make_service

CENTRE = (13.0, 104.0)


def test_an_area_matches_itself_its_province_and_its_districts():
    districts = {d["code"] for d in reference.areas_by_code()["17"]["districts"]}
    assert set(reference.matching_area_codes("17")) == {"17", *districts}
    district = min(districts)
    assert set(reference.matching_area_codes(district)) == {district, "17"}


def _located(organization, name, latitude, longitude):
    found = make_service(organization, name=name)
    found.locations.append(
        Location(
            organization_id=organization.id,
            name=f"{name} place",
            latitude=latitude,
            longitude=longitude,
        )
    )
    directory_service.refresh_coordinates(found)
    db.session.commit()
    return found


def _pages(client, token, limit):
    """Every page's names, in order; never more pages than services (a repeating cursor)."""
    names, cursor = [], None
    for _page in range(20):
        params = {"near": f"{CENTRE[0]},{CENTRE[1]}", "limit": limit}
        response = client.get(
            "/api/v1/services",
            headers=bearer(token),
            query_string={**params, **({"cursor": cursor} if cursor else {})},
        )
        assert response.status_code == 200, response.get_json()
        names += [item["name"] for item in response.get_json()["items"]]
        cursor = response.get_json()["next_cursor"]
        if not cursor:
            return names
    raise AssertionError(f"The cursors never ended: {names}")


@pytest.mark.parametrize("limit", [1, 2, 3, 50])
def test_pages_by_distance_are_those_of_the_whole_directory(client, partner, limit):
    """Services inside, on the edge of and beyond every radius the search tries first, two at
    the same place and one without coordinates: every page size gives the one order."""
    organization = make_org()
    distance = search.Distance(*CENTRE)
    first = search.NEAR_RADII[0]
    north = {"a": 0.1, "b": 0.4, "edge": first, "past the edge": first * 1.1, "c": 0.9}
    north |= {"d": 1.9, "e": 3.5, "f": 7.0, "g": search.NEAR_RADII[-1] + 4}
    places = {name: (offset, 0) for name, offset in north.items()}
    places |= {"twin 1": (0.3, 0), "twin 2": (0.3, 0)}
    for name, share in {"corner": 0.9, "far corner": 0.98}.items():  # in the first box, but
        places[name] = (first * share, first * share / distance.scale)  # beyond its radius
    places |= {"west": (0, -0.6)}
    located = [
        _located(organization, name, CENTRE[0] + north, CENTRE[1] + east)
        for name, (north, east) in places.items()
    ]
    nowhere = make_service(organization, name="nowhere")
    expected = [s.name for s in sorted([*located, nowhere], key=lambda s: (distance.of(s), s.id))]
    assert expected[-1] == "nowhere"
    assert _pages(client, partner["token"], limit) == expected
