"""The HSDS 3.0 compiled schemas, read from the copy kept in tests/standards/."""

import functools
import json
import tarfile
from pathlib import Path

ARCHIVE = Path(__file__).resolve().parent / "standards" / "hsds-3.0.tar.xz"


@functools.cache
def schema(name):
    """One schema file of HSDS 3.0, e.g. 'service.json'."""
    with tarfile.open(ARCHIVE, "r:xz") as archive:
        member = archive.extractfile(f"hsds-3.0/{name}")
        return json.loads(member.read().decode("utf-8"))
