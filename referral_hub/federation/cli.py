"""`referral-hub peers ...`: peering with other networks' hubs, for coordinators."""

import sys

import click
from flask.cli import with_appcontext

peers_cli = click.Group("peers", help="Peer hubs of other networks: directories and referrals.")
ACTOR = "cli"


def _run(action):
    from ..cli import run_service  # here: the command line imports this module

    return run_service(action)


def _emit(data):
    from ..cli import emit

    emit(data)


@peers_cli.command("invite")
@click.option("--name", required=True, help="The peer's network, e.g. 'Siem Reap network'.")
@with_appcontext
def invite(name):
    """Create the peer and its federation client; prints the credentials to give its
    coordinator (the secret only this once)."""
    from . import peering

    _emit(_run(lambda: peering.invite(ACTOR, name)))


@peers_cli.command("add")
@click.option("--name", required=True, help="The peer's network, e.g. 'Phnom Penh network'.")
@click.option("--url", required=True, help="The peer hub's base URL (its issuer).")
@click.option("--client-id", required=True, help="The client id the peer's invite printed.")
@click.option("--client-secret-stdin", is_flag=True, required=True, help="Read the secret.")
@with_appcontext
def add(name, url, client_id, client_secret_stdin):
    """Sync from the peer and forward to it, after checking its issuer and credentials."""
    from . import peering

    secret = sys.stdin.readline().strip()
    if not secret:
        raise click.UsageError("Give the client secret on standard input.")
    peer = _run(lambda: peering.add(ACTOR, name, url, client_id, secret))
    _emit({"id": peer.id, "name": peer.name, "url": peer.url, "status": peer.status})


@peers_cli.command("list")
@with_appcontext
def list_peers():
    """Every peer, with its state, last sync and referral flows."""
    from . import peering

    _emit(peering.summaries())


@peers_cli.command("sync")
@click.argument("name", required=False)
@with_appcontext
def sync_now(name):
    """Pull the directory of one peer (or every added one) now, and print what changed."""
    from . import peering, sync

    peers = [peering.find(name)] if name else peering.added_peers()
    outcomes = {peer.name: sync.sync(peer.id) for peer in peers}
    _emit(outcomes)
    if not all(outcome["ok"] for outcome in outcomes.values()):
        sys.exit(1)


def _state_command(command_name, status, help_text):
    @peers_cli.command(command_name, help=help_text)
    @click.argument("name")
    @with_appcontext
    def command(name):
        from . import peering

        peer = _run(lambda: peering.set_status(ACTOR, name, status))
        _emit({"id": peer.id, "name": peer.name, "status": peer.status})

    return command


_state_command("pause", "paused", "Stop syncing from, forwarding to and hearing from a peer.")
_state_command("resume", "active", "Sync, forward and hear from a paused peer again.")


@peers_cli.command("remove")
@click.argument("name")
@with_appcontext
def remove(name):
    """End the peering; referrals exchanged stay readable, marked as a former peer's."""
    from . import peering

    peer = _run(lambda: peering.remove(ACTOR, name))
    _emit({"id": peer.id, "name": peer.name, "status": peer.status})


@peers_cli.command("trust")
@click.argument("name")
@click.option("--confidential/--no-confidential", required=True)
@with_appcontext
def trust(name, confidential):
    """Whether confidential locations (safe houses) cross to this peer; the default is no."""
    from . import peering

    peer = _run(lambda: peering.set_trusted(ACTOR, name, confidential))
    _emit({"id": peer.id, "name": peer.name, "trusted_with_confidential": confidential})
