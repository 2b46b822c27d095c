"""The hub's logo, also its favicon: one small SVG the hub serves itself."""

from pathlib import Path

from flask import Blueprint, send_file

LOGO = Path(__file__).resolve().parent.parent / "static" / "logo.svg"
ONE_DAY = 24 * 3600

bp = Blueprint("brand", __name__)


@bp.get("/favicon.ico")
def favicon():
    """Browsers ask /favicon.ico for any page, the API's included: the logo answers."""
    return send_file(LOGO, mimetype="image/svg+xml", max_age=ONE_DAY)
