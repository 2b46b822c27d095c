"""`referral-hub audit ...`: check the audit log's hash chain."""

import json
import sys

import click
from flask.cli import with_appcontext

from . import service

audit_cli = click.Group("audit", help="The append-only, hash-chained audit log.")


@audit_cli.command("verify")
@with_appcontext
def verify():
    """Recompute the chain; print the result as JSON and exit 1 at the first broken link."""
    result = service.verify()
    click.echo(json.dumps(result, indent=2))
    if not result["ok"]:
        sys.exit(1)
