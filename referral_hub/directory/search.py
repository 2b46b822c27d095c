"""Directory search: filters that understand the area hierarchy, text, distance, stable pages."""

import math

from sqlalchemy import and_, exists, func, literal, or_, select

from ..extensions import db
from ..pagination import paginate
from . import reference
from .documents import SERVICES, service_documents
from .models import Organization, Service, ServiceArea, ServiceCategory, ServiceLanguage

NO_DISTANCE = 1.0e12
KM_PER_DEGREE = 111.195
NEAR_RADII = (0.5, 2.0, 8.0)  # degrees: where a search by distance looks before everywhere


def _has_link(model, column, values):
    return exists(select(literal(1)).where(model.service_id == Service.id, column.in_(values)))


def _area_condition(area_code):
    """A service matches an area when it covers that area, its province or one of its districts."""
    return _has_link(ServiceArea, ServiceArea.area_code, reference.matching_area_codes(area_code))


def _escape_like(word):
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _text_condition(text):
    """PostgreSQL full-text search on words, plus substring matching for scripts without
    spaces between words (Khmer); SQLite has only the substring matching."""
    words = text.lower().split()[:10]
    substrings = and_(
        *[Service.search_text.like(f"%{_escape_like(w)}%", escape="\\") for w in words]
    )
    if db.engine.dialect.name != "postgresql":
        return substrings
    vector = func.to_tsvector("simple", Service.search_text)
    return or_(vector.op("@@")(func.plainto_tsquery("simple", text)), substrings)


class Distance:
    """Squared equirectangular distance, computed the same way in SQL and in Python so the
    cursor of one page matches the ordering of the next: the same operations in the same order
    (SQL renders a * b * (c * d) as a * b * c * d, so no product is grouped), the same rounding."""

    def __init__(self, latitude, longitude):
        self.latitude, self.longitude = latitude, longitude
        self.scale = math.cos(math.radians(latitude))
        self.scale_squared = self.scale * self.scale

    def sql(self):
        dlat = Service.latitude - self.latitude
        dlon = Service.longitude - self.longitude
        return func.coalesce(dlat * dlat + dlon * dlon * self.scale_squared, NO_DISTANCE)

    def within(self, radius):
        """Services at most `radius` degrees away: the box lets the index on the coordinates
        find them (a little wider, so rounding never drops one on the edge), the distance keeps
        exactly those inside the radius."""
        dlat, dlon = radius * 1.01, radius * 1.01 / self.scale
        return and_(
            Service.latitude.between(self.latitude - dlat, self.latitude + dlat),
            Service.longitude.between(self.longitude - dlon, self.longitude + dlon),
            self.sql() <= radius * radius,
        )

    def of(self, service):
        if service.latitude is None or service.longitude is None:
            return NO_DISTANCE
        dlat = service.latitude - self.latitude
        dlon = service.longitude - self.longitude
        return dlat * dlat + dlon * dlon * self.scale_squared

    def km(self, service):
        value = self.of(service)
        return None if value == NO_DISTANCE else round(math.sqrt(value) * KM_PER_DEGREE, 1)


def _matching(filters):
    """The query of the services matching every given filter (all but distance)."""
    query = SERVICES.where(Organization.status == "active")
    query = query.where(Service.status.in_(filters.get("status") or ["active"]))
    if filters.get("category"):
        query = query.where(_has_link(ServiceCategory, ServiceCategory.code, filters["category"]))
    area = filters.get("district") or filters.get("province")
    if area:
        query = query.where(_area_condition(area))
    if filters.get("age") is not None:
        age = filters["age"]
        query = query.where(
            or_(Service.minimum_age.is_(None), Service.minimum_age <= age),
            or_(Service.maximum_age.is_(None), Service.maximum_age >= age),
        )
    if filters.get("sex"):
        query = query.where(
            or_(Service.eligibility_sex.is_(None), Service.eligibility_sex == filters["sex"])
        )
    if filters.get("language"):
        query = query.where(_has_link(ServiceLanguage, ServiceLanguage.code, [filters["language"]]))
    if filters.get("accepting") is not None:
        query = query.where(Service.accepting_referrals.is_(filters["accepting"]))
    if filters.get("capacity"):
        query = query.where(Service.capacity_status.in_(filters["capacity"]))
    if filters.get("organization_id"):
        query = query.where(Service.organization_id == str(filters["organization_id"]))
    hub = filters.get("hub", "all")
    if hub != "all":
        query = query.where(Service.peer_id.is_(None) if hub == "local" else Service.peer_id == hub)
    if filters.get("q"):
        query = query.where(_text_condition(filters["q"]))
    if filters.get("exclude_organization_id"):  # the pages leave out the reader's own
        query = query.where(Service.organization_id != filters["exclude_organization_id"])
    return query


def count_services(filters):
    """How many services match the filters: what a page of results says first."""
    query = _matching(filters).with_only_columns(Service.id).order_by(None)
    return db.session.scalar(select(func.count()).select_from(query.subquery()))


def search_services(filters, page_args, show_confidential=False):
    """Services matching every given filter, a page at a time, in a stable order, as documents
    (see documents.py) with why each matched."""
    query = _matching(filters)
    area = filters.get("district") or filters.get("province")
    near = filters.get("near")
    if near:
        distance = Distance(*near)
        rows, cursor = _nearest_first(query, distance, page_args)
    else:
        rows, cursor = paginate(query, Service.name, Service.id, page_args, plain_rows=True)
        distance = None
    documents = service_documents(rows, show_confidential)
    hits = [_hit(doc, filters, area) for doc in documents]
    if distance is not None:
        for hit, row in zip(hits, rows, strict=True):
            hit["distance_km"] = distance.km(row)
    return hits, cursor


def _nearest_first(query, distance, page_args):
    """A page in order of distance, looked for within growing radii before everywhere. A page
    with more after it, found within a radius, is the page of the whole directory: every service
    inside the radius is nearer than every service outside."""
    ordering = f"services.near:{distance.latitude},{distance.longitude}"
    for radius in (*NEAR_RADII, None):
        within = query if radius is None else query.where(distance.within(radius))
        rows, cursor = paginate(
            within,
            distance.sql(),
            Service.id,
            page_args,
            sort_value=distance.of,
            ordering=ordering,
            plain_rows=True,
        )
        if cursor or radius is None:
            return rows, cursor


def _hit(document, filters, area):
    """The service with why it matched: the categories and areas the query asked for."""
    match = {}
    if filters.get("category"):
        match["categories"] = sorted(set(document["categories"]) & set(filters["category"]))
    if area:
        related = set(reference.matching_area_codes(area))
        match["areas"] = [a["code"] for a in document["areas"] if a["code"] in related]
    if filters.get("q"):
        match["text"] = filters["q"]
    return {"service": document, "match": match}
