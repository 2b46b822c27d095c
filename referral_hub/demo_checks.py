"""What `referral-hub demo` makes sure of before it loads anything: its port is free, and no
other demo uses its SQLite file. Also what it prints of its database, and how it resets it."""

import os
import socket
from pathlib import Path

from sqlalchemy.engine import make_url

try:
    import fcntl
except ImportError:  # Windows: no advisory locks there; the demo runs unguarded
    fcntl = None


class DemoRefused(Exception):
    """The demo cannot start as asked; the message says why and what to do."""


def check_port_free(host, port):
    """Bind the port as the server will (address reuse on, as Werkzeug's server sets it), and
    let it go at once: a port some process listens on is refused."""
    family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise DemoRefused(
                f"Port {port} on {host} is in use ({exc.strerror}): stop what serves it "
                "(another demo?) or choose another port with --port."
            ) from None


def shown_url(database_uri):
    """The database URL with its password masked, for printing."""
    return make_url(database_uri).render_as_string(hide_password=True)


def sqlite_path(database_uri):
    """The SQLite file a database URL names, or None for another database or SQLite in memory."""
    url = make_url(database_uri)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


class DatabaseLock:
    """An exclusive lock on a file beside the demo's SQLite database, held while a demo uses it.

    The kernel lets go of the lock when the process ends however it ends, so a crashed demo
    leaves no stale lock behind; the file is only where the holder writes its process id."""

    def __init__(self, database):
        self.path = Path(f"{database}.demo-lock")
        self.database = database
        self.handle = None

    def acquire(self):
        if fcntl is None:
            return
        while True:
            handle = open(self.path, "a+")  # noqa: SIM115 (held open while the demo runs)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                handle.close()
                raise DemoRefused(
                    f"Another demo (process {holder}) is using {self.database}: stop it first, "
                    "or give this one its own instance folder (HUB_INSTANCE_PATH)."
                ) from None
            if self._still_at_path(handle):
                break
            handle.close()  # its holder removed it as we opened it: lock the new file
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self.handle = handle

    def _still_at_path(self, handle):
        try:
            return os.stat(self.path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            return False

    def release(self):
        """Remove the file, then let go: a demo waiting on it then locks a new one."""
        if self.handle is None:
            return
        self.path.unlink(missing_ok=True)
        self.handle.close()
        self.handle = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *_):
        self.release()


def delete_database(database):
    """Delete a demo's SQLite file (and its journals), so that the demo starts afresh."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
