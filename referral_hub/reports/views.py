"""The dashboard of referral figures, the same figures as a CSV file, and the monthly report
to print (A4) or to download as a PDF made here."""

import csv
import io
from datetime import date, timedelta

from flask import Response, current_app, render_template, request
from flask_babel import format_date, format_number, format_timedelta, get_timezone
from flask_babel import gettext as _
from marshmallow import EXCLUDE, ValidationError

from .. import clock
from ..errors import InvalidInput
from ..referrals import visibility
from ..web.error_pages import page_blueprint
from ..web.forms import form_errors
from ..web.labels import status_labels
from ..web.localize import area_name, category_name
from ..web.session import signed_in
from . import charts, pdf, service
from .schemas import ReportArgs

TREND_MONTHS = 6  # the monthly report shows its month and the five before it
TREND_SHOWN = 12  # a longer period's earlier months are in the CSV and the API
MONTH_FIGURES = (
    "sent",
    "accepted",
    "completed",
    "median_hours_to_receive",
    "p90_hours_to_receive",
    "median_hours_to_accept",
    "p90_hours_to_accept",
)

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
    times = [
        ("median_hours_to_receive", _("Median time from sending to receipt")),
        ("p90_hours_to_receive", _("90th percentile of the time to receipt")),
        ("median_hours_to_accept", _("Median time from sending to acceptance")),
        ("p90_hours_to_accept", _("90th percentile of the time to acceptance")),
    ]
    counts = [
        ("overdue", _("Overdue now")),
        ("escalated", _("Escalated to the coordinators")),
    ]
    return [
        ("total", _("Referrals sent"), format_number(figures["total"]), figures["total"]),
        *((key, label, _duration(figures[key]), figures[key]) for key, label in times),
        *((key, label, format_number(figures[key]), figures[key]) for key, label in counts),
    ]


def _month_name(month):
    year, number = (int(part) for part in month.split("-"))
    return format_date(date(year, number, 1), "MMMM y")


def _trend(figures):
    """The last months of the period (TREND_SHOWN at most, so that a page of ten years stays
    light): those with referrals as rows for the page, and the names of those without."""
    rows = [
        {
            **month,
            "name": _month_name(month["month"]),
            "times": {
                step: (
                    _duration(month[f"median_hours_to_{step}"]),
                    _duration(month[f"p90_hours_to_{step}"]),
                )
                for step in ("receive", "accept")
            },
        }
        for month in figures["by_month"][-TREND_SHOWN:]
    ]
    return [row for row in rows if row["sent"]], [row["name"] for row in rows if not row["sent"]]


def _trend_chart(months):
    series = [_("Sent"), _("Accepted"), _("Completed")]
    rows = [
        (month["name"], [month["sent"], month["accepted"], month["completed"]]) for month in months
    ]
    return charts.grouped_bar_chart(
        "chart-trend", _("Referrals per month"), rows, series, format_number
    )


def _category_province(figures):
    return [
        (
            category_name(row["category"]),
            area_name(row["province"]) if row["province"] else _("Not given"),
            row["count"],
        )
        for row in figures["by_category_and_province"]
    ]


def _reach(figures):
    labels = {
        visibility.CHILD_PROVINCE: _("The child or family is from your provinces"),
        visibility.SERVICE_PROVINCE: _("The receiving service is in your provinces"),
    }
    return [(row["code"], labels[row["code"]], row["count"]) for row in figures["by_reach"]]


def _report(principal, figures, trend_figures=None):
    """What the dashboard and the printed report show of the figures."""
    months, quiet_months = _trend(trend_figures or figures)
    sections = [
        (
            section_id,
            title,
            [row for row in rows if row[2]],
            [label for _code, label, count in rows if not count],
            charts.bar_chart(
                f"chart-{section_id}",
                title,
                [(label, n) for _c, label, n in rows if n],
                format_number,
            ),
        )
        for section_id, title, rows in _sections(figures)
    ]
    return {
        "figures": figures,
        "headlines": _headlines(figures),
        "sections": sections,
        "months": months,
        "quiet_months": quiet_months,
        "trend_chart": _trend_chart(months),
        "trend_cut": len((trend_figures or figures)["by_month"]) > TREND_SHOWN,
        "category_province": _category_province(figures),
        "reach": _reach(figures),
        "whole_network": principal.has_role("coordinator"),
        "provinces": [area_name(code) for code in sorted(principal.provinces)],
    }


@bp.get("/reports")
@signed_in(*service.READERS)
def dashboard(principal):
    figures, errors = _figures(principal, strict=False)
    shown = {"from": figures["first"].isoformat(), "to": figures["last"].isoformat()}
    return render_template(
        "reports/dashboard.html",
        **_report(principal, figures),
        errors=errors,
        values=request.args if errors else shown,
        month_values={"month": _previous_month()},
    )


def _previous_month():
    first, _last = service.month_days(None, clock.now().astimezone(get_timezone()).date())
    return first.strftime("%Y-%m")


def _monthly_report(principal):
    """The printed report's context: the month asked for (by default the last one) and the
    trend of the six months up to it."""
    zone = str(get_timezone())
    today = clock.now().astimezone(get_timezone()).date()
    month = request.args.get("month") or None
    first, last = service.month_days(month, today)
    trend_first, _last = service.month_days(first.strftime("%Y-%m"), today, TREND_MONTHS)
    figures = service.summary(principal, first, last, zone)
    trend = service.summary(principal, trend_first, last, zone)
    return {
        **_report(principal, figures, trend),
        "month_name": _month_name(first.strftime("%Y-%m")),
        "month": first.strftime("%Y-%m"),
        "made_on": today,
    }


@bp.get("/reports/print")
@signed_in(*service.READERS)
def print_page(principal):
    return render_template("reports/print.html", **_monthly_report(principal), for_pdf=False)


@bp.get("/reports/print.pdf")
@signed_in(*service.READERS)
def print_pdf(principal):
    report = _monthly_report(principal)
    page = render_template("reports/print.html", **report, for_pdf=True)
    name = f"referral-report-{report['month']}.pdf"
    return Response(
        pdf.from_page(page, current_app.static_folder),
        mimetype="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
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
    for month in figures["by_month"]:
        for key in MONTH_FIGURES:
            value = "" if month[key] is None else month[key]
            writer.writerow([f"month_{key}", month["month"], _month_name(month["month"]), value])
    name = f"referral-figures-{figures['first'].isoformat()}-{figures['last'].isoformat()}.csv"
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
