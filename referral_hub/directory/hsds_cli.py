"""`referral-hub directory import FILE`: load an HSDS 3.0 document without the HTTP API."""

import json
import sys

import click
from flask.cli import with_appcontext

from ..errors import Problem
from ..extensions import db
from . import hsds


@click.group("directory")
def directory_cli():
    """The service directory."""


@directory_cli.command("import")
@click.argument("file", type=click.File(encoding="utf-8"))
@with_appcontext
def import_file(file):
    """Create or update organisations and services from an HSDS 3.0 JSON file, all or nothing."""
    try:
        document = json.load(file)
    except ValueError as exc:
        raise click.BadParameter(f"Not JSON: {exc}", param_hint="FILE") from None
    try:
        counts = hsds.import_document(document, None)
        db.session.commit()
    except Problem as problem:
        db.session.rollback()
        click.echo(json.dumps(problem.to_dict(), ensure_ascii=False), err=True)
        sys.exit(1)
    click.echo(json.dumps(counts))
