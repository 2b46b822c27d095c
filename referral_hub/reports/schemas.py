"""Shapes of the reports: the period asked for, and the figures."""

from marshmallow import Schema, fields


class ReportArgs(Schema):
    """The period: first and last day (inclusive); both optional."""

    first = fields.Date(data_key="from", load_default=None)
    last = fields.Date(data_key="to", load_default=None)


class CodeCount(Schema):
    code = fields.String(allow_none=True)
    count = fields.Integer()


class OrganizationCount(Schema):
    id = fields.String()
    name = fields.String()
    count = fields.Integer()


class PeerFlow(Schema):
    id = fields.String()
    name = fields.String()
    sent = fields.Integer()
    received = fields.Integer()


class MonthFigures(Schema):
    month = fields.String()
    sent = fields.Integer()
    accepted = fields.Integer()
    completed = fields.Integer()
    median_hours_to_receive = fields.Float(allow_none=True)
    p90_hours_to_receive = fields.Float(allow_none=True)
    median_hours_to_accept = fields.Float(allow_none=True)
    p90_hours_to_accept = fields.Float(allow_none=True)


class CategoryProvinceCount(Schema):
    category = fields.String()
    province = fields.String(allow_none=True)
    count = fields.Integer()


class SummaryView(Schema):
    first = fields.Date(data_key="from")
    last = fields.Date(data_key="to")
    total = fields.Integer()
    by_status = fields.List(fields.Nested(CodeCount))
    by_category = fields.List(fields.Nested(CodeCount))
    by_province = fields.List(fields.Nested(CodeCount))
    by_receiving_organization = fields.List(fields.Nested(OrganizationCount))
    by_sending_organization = fields.List(fields.Nested(OrganizationCount))
    by_category_and_province = fields.List(fields.Nested(CategoryProvinceCount))
    by_month = fields.List(fields.Nested(MonthFigures))
    by_reach = fields.List(fields.Nested(CodeCount))
    median_hours_to_receive = fields.Float(allow_none=True)
    p90_hours_to_receive = fields.Float(allow_none=True)
    median_hours_to_accept = fields.Float(allow_none=True)
    p90_hours_to_accept = fields.Float(allow_none=True)
    overdue = fields.Integer()
    escalated = fields.Integer()
    by_peer_hub = fields.List(fields.Nested(PeerFlow))
