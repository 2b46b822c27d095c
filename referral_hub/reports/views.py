"""The dashboard of referral figures, and the same figures as a CSV file."""

import csv
import io
from datetime import timedelta

from flask import Response, render_template, request
from flask_babel import format_number, format_timedelta, get_timezone
from flask_babel import gettext as _
from marshmallow import EXCLUDE, ValidationError

from ..errors import InvalidInput
from ..web.error_pages import page_blueprint
from ..web.forms import form_errors
from ..web.labels import status_labels
from ..web.localize import area_name, category_name
from ..web.session import signed_in
from . import charts, service
from .schemas import ReportArgs

bp = page_blueprint("report_pages", __name__)

# A spreadsheet runs a cell starting with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _load_period():
    return ReportArgs().load(request.args, unknown=EXCLUDE)


def _figures(principal, strict):
    """The figures of the period asked for; a wrong period raises (strict) or gives the
    default period's figures and the errors to show next to the fields."""
    zone = str(get_timezone())
    try:
        args = _load_period()
        return service.summary(principal, args["first"], args["last"], zone), {}
    except (ValidationError, InvalidInput) as exc:
        if strict:
            raise
        errors = form_errors(exc)
    return service.summary(principal, zone=zone), errors


def _duration(hours):
    return (
        format_timedelta(timedelta(hours=hours), threshold=1.5)
        if hours is not None
        else _("No data")
    )


def _sections(figures):
    """The breakdowns: (id, title, [(code, label, count)])."""

    def organizations(rows):
        return [(row["id"], row["name"], row["count"]) for row in rows]

    def coded(rows, name):
        return [
            (row["code"], name(row["code"]) if row["code"] else _("Not given"), row["count"])
            for row in rows
        ]

    statuses = status_labels()
    return [
        (
            "status",
            _("Referrals by status"),
            [(r["code"], statuses[r["code"]], r["count"]) for r in figures["by_status"]],
        ),
        ("category", _("Referrals by need"), coded(figures["by_category"], category_name)),
        ("province", _("Referrals by province"), coded(figures["by_province"], area_name)),
        (
            "receiving_organization",
            _("Referrals by receiving organisation"),
            organizations(figures["by_receiving_organization"]),
        ),
        (
            "sending_organization",
            _("Referrals by sending organisation"),
            organizations(figures["by_sending_organization"]),
        ),
    ]


def _headlines(figures):
    """The single figures: (id, label, value as shown, value as data)."""
    receive, accept = figures["median_hours_to_receive"], figures["median_hours_to_accept"]
    return [
        ("total", _("Referrals sent"), format_number(figures["total"]), figures["total"]),
        (
            "median_hours_to_receive",
            _("Median time from sending to receipt"),
            _duration(receive),
            receive,
        ),
        (
            "median_hours_to_accept",
            _("Median time from sending to acceptance"),
            _duration(accept),
            accept,
        ),
        ("overdue", _("Overdue now"), format_number(figures["overdue"]), figures["overdue"]),
        (
            "escalated",
            _("Escalated to the coordinators"),
            format_number(figures["escalated"]),
            figures["escalated"],
        ),
    ]


@bp.get("/reports")
@signed_in(*service.READERS)
def dashboard(principal):
    figures, errors = _figures(principal, strict=False)
    sections = [
        (
            section_id,
            title,
            rows,
            charts.bar_chart(
                f"chart-{section_id}", title, [(label, n) for _c, label, n in rows], format_number
            ),
        )
        for section_id, title, rows in _sections(figures)
    ]
    shown = {"from": figures["first"].isoformat(), "to": figures["last"].isoformat()}
    return render_template(
        "reports/dashboard.html",
        figures=figures,
        headlines=_headlines(figures),
        sections=sections,
        errors=errors,
        values=request.args if errors else shown,
        whole_network=principal.has_role("coordinator"),
        provinces=[area_name(code) for code in sorted(principal.provinces)],
    )


def _cell(value):
    """A text cell a spreadsheet shows as text, never runs as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


@bp.get("/reports/figures.csv")
@signed_in(*service.READERS)
def download(principal):
    figures, _errors_none = _figures(principal, strict=True)
    out = io.StringIO()
    out.write("\ufeff")  # so spreadsheets read the Khmer names as UTF-8
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["figure", "code", "name", "value"])
    writer.writerow(["from", "", "", figures["first"].isoformat()])
    writer.writerow(["to", "", "", figures["last"].isoformat()])
    for figure_id, label, _shown, value in _headlines(figures):
        writer.writerow([figure_id, "", _cell(label), "" if value is None else value])
    for section_id, _title, rows in _sections(figures):
        for code, label, count in rows:
            writer.writerow([section_id, _cell(code or ""), _cell(label), count])
    name = f"referral-figures-{figures['first'].isoformat()}-{figures['last'].isoformat()}.csv"
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
