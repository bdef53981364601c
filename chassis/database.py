"""PostgreSQL access: an async SQLAlchemy engine on asyncpg, one session per request, readiness, and
Alembic migrations run from code."""

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from asyncpg.exceptions import InterfaceError, InternalClientError, PostgresConnectionError, PostgresError
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from sqlalchemy import text
from sqlalchemy.engine import Connection, CursorResult, Result, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import greenlet_spawn

from chassis.errors import Aborted, AlreadyExists, DeadlineExceeded, Unavailable
from chassis.settings import DatabaseSettings

# SQLSTATEs after which the whole transaction may simply be retried by the caller.
_UNIQUE_VIOLATION = "23505"
_RETRYABLE_SQLSTATES = {"40001": "SERIALIZATION_FAILURE", "40P01": "DEADLOCK_DETECTED"}
# A database going away, coming back or out of connections: nothing was decided, so the caller may
# retry (a mutation is safe to retry by its request_id). Class 08 is every lost or refused connection.
_UNAVAILABLE_SQLSTATES = {
    "57P01": ("DATABASE_SHUTTING_DOWN", "the database is shutting down"),
    "57P02": ("DATABASE_SHUTTING_DOWN", "the database is shutting down"),
    "57P03": ("DATABASE_STARTING", "the database is starting up or recovering"),
    "57P05": ("DATABASE_CONNECTION_LOST", "the database closed an idle connection"),
    "53300": ("DATABASE_BUSY", "the database has no connection free"),
    "53000": ("DATABASE_BUSY", "the database is out of resources"),
}
_QUERY_CANCELED = "57014"
_tracer = trace.get_tracer("crm.database")
UNREACHABLE_REASONS = frozenset(
    {"DATABASE_UNAVAILABLE", "DATABASE_CONNECTION_LOST", "DATABASE_SHUTTING_DOWN", "DATABASE_STARTING"}
)
"""Reasons that mean the database cannot be reached at all (not merely busy): readiness drops at once."""


def async_url(url: str) -> str:
    """The SQLAlchemy URL for asyncpg of a plain `postgresql://` URL."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def create_engine(settings: DatabaseSettings, *, application_name: str) -> AsyncEngine:
    """An engine whose connections carry the service's name and a statement timeout."""
    timeout_ms = str(int(settings.statement_timeout_seconds * 1000))
    return create_async_engine(
        async_url(settings.url),
        pool_size=settings.pool_size,
        max_overflow=0,
        pool_timeout=settings.statement_timeout_seconds,
        # No ping before each transaction (three round trips): a connection the server dropped fails
        # its first statement as UNAVAILABLE, SQLAlchemy then renews the whole pool, and the caller retries.
        pool_pre_ping=False,
        connect_args={
            "server_settings": {"application_name": application_name, "statement_timeout": timeout_ms},
            "timeout": settings.statement_timeout_seconds,
        },
    )


class Database:
    """The service's database: hands out one transaction-bound session per request."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._span = {"db.system": "postgresql", "db.name": engine.url.database or ""}
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.reachability = Reachability()
        """Whether the last transaction reached the database; readiness follows it at once."""

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on any error.

        Serialization failures and deadlocks surface as ABORTED (safe to retry); an unreachable
        database as UNAVAILABLE.
        """
        try:
            with _tracer.start_as_current_span("db.transaction", kind=SpanKind.CLIENT, attributes=self._span):
                async with self._sessions() as session, session.begin():
                    yield session
        except DBAPIError as error:
            translated = _translate(error)
            if isinstance(translated, Unavailable) and translated.reason in UNREACHABLE_REASONS:
                self.reachability.lost()
            raise translated from error
        except (TimeoutError, OSError, PostgresConnectionError, InterfaceError) as error:
            # Raised by the driver before SQLAlchemy could wrap them: connect refused or timed out.
            self.reachability.lost()
            raise Unavailable("DATABASE_UNAVAILABLE", "the database cannot be reached") from error
        except PostgresError as error:
            # Raised by the driver itself, unwrapped: a connection refused with the server's own answer
            # (starting up, shutting down, none free), or a statement run on the raw driver connection.
            found = _translate_sqlstate(error.sqlstate, getattr(error, "constraint_name", None), connection_lost=False)
            if found is None:
                raise
            if isinstance(found, Unavailable) and found.reason in UNREACHABLE_REASONS:
                self.reachability.lost()
            raise found from error
        except PoolTimeout as error:
            raise Unavailable("DATABASE_BUSY", "no database connection became free in time") from error
        self.reachability.regained()

    @asynccontextmanager
    async def driver_connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection's asyncpg driver outside any transaction, for a use case written as one
        statement (a server-side function): the statement is its own transaction, so it costs one round
        trip instead of BEGIN, the statement and COMMIT, and the driver keeps it prepared.

        Errors map as in `transaction`; a connection found broken is dropped from the pool.
        """
        try:
            with _tracer.start_as_current_span("db.statement", kind=SpanKind.CLIENT, attributes=self._span):
                pooled = await self.engine.raw_connection()
                try:
                    # The asyncpg dialect's pooled connection wraps the driver's own.
                    yield cast(asyncpg.Connection, pooled.driver_connection)
                except BaseException as error:
                    if not _leaves_connection_usable(error):
                        # Lost, shut down or interrupted mid-statement: closed at once, never handed out again.
                        pooled.invalidate(error if isinstance(error, Exception) else None)
                    raise
                finally:
                    # Back to the pool, whose reset has nothing to roll back: no transaction was begun.
                    await greenlet_spawn(pooled.close)
        except DBAPIError as error:
            # Raised while the pool connected (the statement itself went to the driver).
            translated = _translate(error)
            if isinstance(translated, Unavailable) and translated.reason in UNREACHABLE_REASONS:
                self.reachability.lost()
            raise translated from error
        except PostgresError as error:
            connection_lost = isinstance(error, PostgresConnectionError)
            constraint = getattr(error, "constraint_name", None)
            found = _translate_sqlstate(error.sqlstate, constraint, connection_lost=connection_lost)
            if found is None:
                raise
            if isinstance(found, Unavailable) and found.reason in UNREACHABLE_REASONS:
                self.reachability.lost()
            raise found from error
        except (TimeoutError, OSError, InterfaceError) as error:
            self.reachability.lost()
            raise Unavailable("DATABASE_UNAVAILABLE", "the database cannot be reached") from error
        except InternalClientError as error:
            # The server ended the connection while it sat in the pool (a crash): dropped, retry.
            raise Unavailable("DATABASE_CONNECTION_LOST", "the database connection was lost") from error
        except PoolTimeout as error:
            raise Unavailable("DATABASE_BUSY", "no database connection became free in time") from error
        self.reachability.regained()

    async def is_reachable(self, timeout_seconds: float = 2.0) -> bool:
        """Whether a trivial query answers within the timeout (readiness)."""
        try:
            async with asyncio.timeout(timeout_seconds), self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any failure means not ready
            self.reachability.lost()
            return False
        self.reachability.regained()
        return True

    async def close(self) -> None:
        """Closes every pooled connection."""
        await self.engine.dispose()


class Reachability:
    """Whether the database answered the last time it was asked; listeners hear every change at once."""

    def __init__(self) -> None:
        self.reachable = True
        self._listeners: list[Callable[[bool], None]] = []

    def listen(self, listener: Callable[[bool], None]) -> None:
        """Calls `listener(reachable)` on every change."""
        self._listeners.append(listener)

    def lost(self) -> None:
        """A call found the database unreachable."""
        self._set(False)

    def regained(self) -> None:
        """A call reached the database."""
        self._set(True)

    def _set(self, reachable: bool) -> None:
        if reachable != self.reachable:
            self.reachable = reachable
            for listener in self._listeners:
                listener(reachable)


def _translate(error: DBAPIError) -> Exception:
    driver_error = getattr(error.orig, "__cause__", None)
    sqlstate = getattr(error.orig, "sqlstate", None) or getattr(driver_error, "sqlstate", None)
    connection_lost = _is_closed_connection(driver_error) or error.connection_invalidated
    constraint = getattr(error.orig, "constraint_name", None) or getattr(driver_error, "constraint_name", "")
    return _translate_sqlstate(sqlstate, constraint, connection_lost=connection_lost) or error


def _translate_sqlstate(sqlstate: str | None, constraint: str | None, *, connection_lost: bool) -> Exception | None:
    """The service error of a database error by its SQLSTATE; None when it is no condition of its own."""
    if sqlstate == _QUERY_CANCELED:
        return DeadlineExceeded("STATEMENT_TIMEOUT", "a database statement ran out of time; retry the request")
    if sqlstate in _UNAVAILABLE_SQLSTATES:
        reason, message = _UNAVAILABLE_SQLSTATES[sqlstate]
        return Unavailable(reason, message)
    if (sqlstate or "").startswith("08") or connection_lost:
        return Unavailable("DATABASE_CONNECTION_LOST", "the database connection was lost")
    if sqlstate in _RETRYABLE_SQLSTATES:
        return Aborted(_RETRYABLE_SQLSTATES[sqlstate], "a concurrent change conflicted; retry the request")
    if sqlstate == _UNIQUE_VIOLATION:
        # A race the service's own check could not see: the database's unique index decided.
        return AlreadyExists(
            "ALREADY_EXISTS", "a concurrent request created the same thing", {"constraint": constraint or ""}
        )
    return None


def _leaves_connection_usable(error: BaseException) -> bool:
    """Whether a driver's connection is still fit after `error`: a statement the server refused, not
    a connection lost, shut down or interrupted (cancelled) in the middle of a statement."""
    if not isinstance(error, PostgresError) or isinstance(error, PostgresConnectionError):
        return False
    return error.sqlstate not in _UNAVAILABLE_SQLSTATES


def _is_closed_connection(driver_error: BaseException | None) -> bool:
    """A socket error, or the driver refusing to use a connection the server closed (also one it
    ended while the connection sat idle, which leaves the driver's protocol mid-way)."""
    if isinstance(driver_error, OSError | InternalClientError):
        return True
    return isinstance(driver_error, InterfaceError) and "closed" in str(driver_error)


MIGRATION_ENVIRONMENT = Path(__file__).parent / "migrations"
"""The Alembic environment (env.py, script.py.mako) every service's revisions run in."""


def rows_affected(result: Result[Any]) -> int:
    """How many rows an UPDATE, DELETE or INSERT changed (`Session.execute` types every result as
    `Result`, while DML statements return a `CursorResult`, which counts them)."""
    return cast(CursorResult[Any], result).rowcount or 0


def migrate(database_url: str, revisions: Path, target: str = "head") -> None:
    """Upgrades the database at `database_url` to `target` (the newest by default) of the revisions in
    the folder `revisions`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATION_ENVIRONMENT))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(revisions))
    config.attributes["database_url"] = database_url
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        command.upgrade(config, target)
        return
    # Alembic drives its own event loop, which cannot nest in a running one: give it a thread.
    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(command.upgrade, config, target).result()


def run_migrations_online(config: Config) -> None:
    """Body of every service's Alembic env.py: run the migrations over one async connection."""
    from alembic import context

    async def run() -> None:
        engine = create_async_engine(async_url(config.attributes["database_url"]))
        async with engine.connect() as connection:
            await connection.run_sync(_run_in_transaction, context)
            await connection.commit()
        await engine.dispose()

    asyncio.run(run())


def _run_in_transaction(connection: Connection, context: ModuleType) -> None:
    # `alembic.context` is a module that stands for the running EnvironmentContext.
    environment = cast(EnvironmentContext, context)
    environment.configure(connection=connection, transaction_per_migration=True)
    with environment.begin_transaction():
        environment.run_migrations()
