"""`referral-hub partners apply MANIFEST`."""

import click
from flask.cli import with_appcontext

partners_cli = click.Group("partners", help="Onboard partner organisations.")


@partners_cli.command("apply")
@click.argument("manifest", type=click.Path(dir_okay=False))
@with_appcontext
def apply_manifest(manifest):
    """Create the organisation, users and API clients a manifest names (all or nothing)."""
    from ..cli import emit, run_service  # here: the command line imports this module
    from . import service

    emit(run_service(lambda: service.apply(service.read_manifest(manifest))))
