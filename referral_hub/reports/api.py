"""Reports API: the dashboard's figures as JSON, for coordinators and focal points."""

from flask import Blueprint, current_app, request

from ..auth.principal import protected
from . import service
from .schemas import ReportArgs, SummaryView

bp = Blueprint("reports_api", __name__, url_prefix="/api/v1")


@bp.get("/reports/summary")
@protected("reports:read")
def summary(principal):
    args = ReportArgs().load(request.args)
    zone = current_app.config["BABEL_DEFAULT_TIMEZONE"]
    return SummaryView().dump(service.summary(principal, args["first"], args["last"], zone))
