"""Brings several databases to their newest schema in one process, one after the other: what the
launcher runs before it starts the services, so that the stack pays for one interpreter's start and
one import of Alembic and SQLAlchemy instead of one per database. In a deployment each service still
migrates its own database (`python -m <service> migrate`, the init container of its pod).

`python -m tools.migrate_databases <URL variable>=<revisions folder> ...`: each database's URL is read
from the environment variable named, its revisions from the folder (relative to the repository).
Logs JSON lines like the services; exits 1 at the first database that fails, naming it, 2 on bad
arguments.
"""

import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from chassis.database import migrate
from chassis.logs import configure_logging

REPOSITORY = Path(__file__).resolve().parents[1]

log = logging.getLogger("crm.migrations")


def main(arguments: Sequence[str] | None = None) -> int:
    """Migrates each database named by `arguments` in turn; the process' exit code."""
    configure_logging("migrations")
    databases = [argument.partition("=")[::2] for argument in (sys.argv[1:] if arguments is None else arguments)]
    for variable, folder in databases:
        if not variable or not folder or not (REPOSITORY / folder).is_dir():
            log.error("usage: python -m tools.migrate_databases <URL variable>=<revisions folder> ...")
            return 2
        if not os.environ.get(variable, "").strip():
            log.error("%s is not set: no database to migrate", variable)
            return 2
    for variable, folder in databases:
        started = time.perf_counter()
        try:
            migrate(os.environ[variable].strip(), REPOSITORY / folder)
        except Exception:
            log.exception("the migrations of %s (%s) failed", variable, folder)
            return 1
        seconds = round(time.perf_counter() - started, 3)
        log.info("migrated", extra={"database": variable, "revisions": folder, "seconds": seconds})
    return 0


if __name__ == "__main__":
    sys.exit(main())
