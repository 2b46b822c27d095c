"""The `referral-hub` command line; each command prints JSON. An environment that is not
ready (settings, database) gets one line that says what to do, never a traceback."""

import contextlib
import itertools
import json
import os
import signal
import sys
import time

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext
from flask_migrate.cli import db as migrations_cli
from sqlalchemy.exc import DBAPIError

from . import create_app, demo_checks, logs
from . import demo as demo_data
from .audit.cli import audit_cli
from .auth import keys
from .auth import service as auth_service
from .auth.credentials import new_secret
from .auth.models import ROLES
from .auth.schemas import ClientView, UserView
from .config import ConfigError
from .database_outage import describe, is_outage
from .directory import service as directory_service
from .directory.hsds_cli import directory_cli
from .directory.schemas import OrganizationView
from .errors import Problem
from .extensions import db
from .federation.cli import peers_cli
from .partners.cli import partners_cli

HELP = """Referral Hub: a federated, consent-aware referral hub for NGO networks. It holds
the network's service directory, carries referrals with their consent between
organisations over OAuth 2 APIs, and tells each party when a referral changes.

\b
Try it on this machine, with demo data and nothing to set up:
  referral-hub demo
\b
In production set HUB_ENV, SECRET_KEY, DATA_ENCRYPTION_KEYS and DATABASE_URL, then:
  referral-hub db upgrade
"""


def _environment_problem(exc):
    """The one line to print for an error of the environment, or None for any other error."""
    if isinstance(exc, ConfigError):
        return str(exc)
    if is_outage(exc):
        return (
            f"The database does not answer ({describe(exc)}); check DATABASE_URL and that "
            "the database is up and reachable."
        )
    if isinstance(exc, DBAPIError) and _is_missing_table(exc.orig):
        return "The database has no hub tables yet: run `referral-hub db upgrade` first."
    return None


def _is_missing_table(error):
    return getattr(error, "pgcode", None) == "42P01" or str(error).startswith("no such table")


def _show_asked_help(ctx, name, command, args):
    """Parse down to the command whose help was asked without running any group's callback
    (Flask-Migrate's `db` loads the app in its own): the help option prints and exits."""
    while isinstance(command, click.Group):
        ctx = click.Context(command, info_name=name, parent=ctx)
        rest = click.Command.parse_args(command, ctx, args)
        name, command, args = command.resolve_command(ctx, rest)
    command.make_context(name, args, parent=ctx)


class HubGroup(FlaskGroup):
    """Flask's command group, less its habit of loading the app to list commands: the hub's
    commands are all its own, so `--help` needs no environment and writes nothing."""

    def list_commands(self, ctx):
        self._load_plugin_commands()
        return sorted(super(FlaskGroup, self).list_commands(ctx))

    def get_command(self, ctx, name):
        self._load_plugin_commands()
        return super(FlaskGroup, self).get_command(ctx, name)

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        options = itertools.takewhile(lambda arg: arg != "--", rest)
        if command is not None and set(options) & set(ctx.help_option_names):
            _show_asked_help(ctx, name, command, rest)
        return name, command, rest

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            problem = _environment_problem(exc)
            if problem is None:
                raise
            raise click.ClickException(problem) from None


cli = HubGroup(create_app=create_app, add_version_option=False, help=HELP)


def emit(data):
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def run_service(action):
    """Run a service call and commit, or print its problem as JSON and exit 1."""
    try:
        result = action()
        db.session.commit()
        return result
    except Problem as problem:
        db.session.rollback()
        click.echo(json.dumps(problem.to_dict(), ensure_ascii=False), err=True)
        sys.exit(1)


@cli.command("create-org")
@click.option("--name", required=True)
@click.option("--province", help="Two-digit province code, e.g. 17 for Siem Reap.")
@click.option("--description", default="")
@with_appcontext
def create_org(name, province, description):
    """Add an organisation to the network."""
    organization = run_service(
        lambda: directory_service.create_organization(None, name, description, province)
    )
    emit(OrganizationView().dump(organization))


@cli.command("create-user")
@click.option("--org", "organization_id", required=True, help="Organisation id.")
@click.option("--email", required=True)
@click.option("--role", "roles", required=True, multiple=True, type=click.Choice(ROLES))
@click.option("--province", "provinces", multiple=True, help="Province code (focal points).")
@click.option("--name", default="")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input; without it a temporary one is printed.",
)
@with_appcontext
def create_user(organization_id, email, roles, provinces, name, password_stdin):
    """Add a user to an organisation. Without --password-stdin the user gets a temporary
    password, printed this once, to change on the account page after signing in."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        if len(password) < 12:
            raise click.UsageError("The password must have at least 12 characters.")
    else:
        password = new_secret(12)
    user = run_service(
        lambda: auth_service.create_user(
            None, organization_id, email, list(roles), name, list(provinces), password
        )
    )
    if password_stdin:
        emit(UserView().dump(user))
        return
    issuer = current_app.config["HUB_ISSUER"]
    emit(
        {
            **UserView().dump(user),
            "temporary_password": password,
            "sign_in": f"{issuer}/login",
            "then": f"change it at {issuer}/account/password; it is not shown again",
        }
    )


@cli.command("create-client")
@click.option("--org", "organization_id", required=True, help="Organisation id.")
@click.option(
    "--scopes", required=True, help='Space-separated, e.g. "directory:read referrals:read".'
)
@click.option("--name", default="API client")
@click.option(
    "--grant-type",
    "grant_types",
    multiple=True,
    default=["client_credentials"],
    type=click.Choice(["client_credentials", "authorization_code", "refresh_token"]),
)
@click.option(
    "--auth-method",
    default="client_secret_basic",
    type=click.Choice(["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]),
)
@click.option("--redirect-uri", "redirect_uris", multiple=True)
@click.option("--jwks-file", type=click.File(), help="Public JWKS for private_key_jwt.")
@with_appcontext
def create_client(
    organization_id, scopes, name, grant_types, auth_method, redirect_uris, jwks_file
):
    """Register an API client; its secret is printed this once and never again."""
    unknown = set(scopes.split()) - set(current_app.config["SCOPES"])
    if unknown:
        raise click.UsageError(f"Unknown scopes: {' '.join(sorted(unknown))}")
    jwks = json.load(jwks_file) if jwks_file else None
    client, secret = run_service(
        lambda: auth_service.create_client(
            None,
            organization_id,
            name,
            scopes.split(),
            list(grant_types),
            auth_method,
            list(redirect_uris),
            jwks,
        )
    )
    emit({**ClientView().dump(client), "client_secret": secret})


@cli.group("keys")
def keys_group():
    """Access token signing keys."""


@keys_group.command("rotate")
@with_appcontext
def rotate_keys():
    """Start signing with a new key; the old one stays in the JWKS until its tokens expire."""
    row = keys.rotate()
    emit({"kid": row.kid, "created_at": row.created_at})


@keys_group.command("rotate-data")
@with_appcontext
def rotate_data_keys():
    """Re-encrypt personal data (referrals and their drafts) under DATA_ENCRYPTION_KEY_ID; old
    keys can then be removed."""
    from .referrals import drafts, service

    changed = service.rotate_data_keys() + drafts.rotate_data_keys()
    db.session.commit()
    emit({"key_id": current_app.config["DATA_ENCRYPTION_KEY_ID"], "values_re_encrypted": changed})


@cli.command("worker")
@with_appcontext
def worker():
    """Run the scheduler's jobs in the foreground."""
    from . import jobs

    jobs.start(current_app._get_current_object())
    click.echo("scheduler running; Ctrl+C stops it", err=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


@cli.command("demo", with_appcontext=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--no-serve", is_flag=True, help="Prepare the database and demo data, then exit.")
@click.option(
    "--reset", is_flag=True, help="Delete the demo's SQLite database first: fresh demo data."
)
@click.option(
    "--federation",
    is_flag=True,
    help="Two peered hubs: the Phnom Penh network on --port, Siem Reap's on --peer-port.",
)
@click.option("--peer-port", default=5001, show_default=True, type=int, help="With --federation.")
@click.option(
    "--network",
    type=click.Choice([network.slug for network in demo_data.NETWORKS]),
    hidden=True,
    help="Serve one network of the federation demo (the command --federation runs twice).",
)
def demo(host, port, no_serve, reset, federation, peer_port, network):
    """Migrate, load demo data and serve a development hub with its scheduler."""
    from .federation import demo as federation_demo

    os.environ["HUB_ENV"] = "development"
    if federation and no_serve:
        raise click.UsageError("--federation serves both hubs: peering needs them serving.")
    try:
        served = [port, peer_port] if federation else [port]
        for each in [] if no_serve else served:
            demo_checks.check_port_free(host, each)  # before anything is loaded or written
        if federation:
            return federation_demo.run(host, (port, peer_port), emit, reset)
        _demo_hub(host, port, no_serve, reset, network)
    except (demo_checks.DemoRefused, federation_demo.DemoFailed) as exc:
        raise click.ClickException(str(exc)) from None


RESET_HINT = "referral-hub demo --reset deletes this database and starts afresh"


def _demo_hub(host, port, no_serve, reset, network_slug):
    """One demo hub: the hub of this machine, or one network's of the federation demo."""
    from flask_migrate import upgrade

    from . import jobs
    from .federation import demo as federation_demo

    os.environ.setdefault("HUB_ISSUER", f"http://{host}:{port}")  # --network sets its own
    if network_slug:
        network = federation_demo.network(network_slug)
        app = create_app(federation_demo.settings(network, host, port))
    else:
        network, app = demo_data.ONE_HUB, create_app()
    database_uri = app.config["SQLALCHEMY_DATABASE_URI"]
    database = demo_checks.sqlite_path(database_uri)
    if reset and database is None:
        raise click.UsageError(
            "--reset deletes the demo's SQLite file, but DATABASE_URL names another database: "
            "empty that one yourself."
        )
    with demo_checks.DatabaseLock(database) if database else contextlib.nullcontext():
        if reset:
            demo_checks.delete_database(database)
        with app.app_context():
            upgrade()
            created = demo_data.load(network)
        issuer = app.config["HUB_ISSUER"]
        emit(
            {
                "database": demo_checks.shown_url(database_uri),
                "demo_data": "loaded" if created else "already present",
                "sign_in": {
                    "url": f"{issuer}/login",
                    "emails": [u[0] for u in network.users],
                    "password": demo_data.DEMO_PASSWORD,
                },
                "get_a_token": demo_data.token_command(issuer, network.clients[0]),
                **({"reset": RESET_HINT} if database else {}),
            }
        )
        if no_serve:
            return
        from werkzeug.serving import run_simple

        logs.quiet_console()
        jobs.start(app)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # let go of the lock on the way
        run_simple(host, port, app, threaded=True)


cli.add_command(migrations_cli)  # Flask-Migrate adds it to the app's commands, which need the app
cli.add_command(directory_cli)
cli.add_command(audit_cli)
cli.add_command(partners_cli)
cli.add_command(peers_cli)


def main():
    cli.main(prog_name="referral-hub")
