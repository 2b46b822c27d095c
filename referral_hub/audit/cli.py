"""`referral-hub audit ...`: check the audit log's hash chain, seal what is pending."""

import json
import sys

import click
from flask.cli import with_appcontext

from . import service

audit_cli = click.Group("audit", help="The append-only, hash-chained audit log.")


@audit_cli.command("verify")
@with_appcontext
def verify():
    """Recompute the chain; print the result and what waits to be sealed as JSON, and exit 1
    at the first broken link."""
    result = service.verify()
    click.echo(json.dumps(result, indent=2))
    if not result["ok"]:
        sys.exit(1)


@audit_cli.command("seal")
@with_appcontext
def seal():
    """Seal every pending entry now (the worker's sequencer does it within the seal delay)."""
    click.echo(json.dumps({"sealed": service.seal_all()}))
