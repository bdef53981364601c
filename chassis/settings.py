"""Typed settings read once from environment variables at start.

A settings class is a frozen dataclass whose fields say, once, their default and how their variable
is read (`setting(...)`); `read_settings` fills it from `<PREFIX>_<FIELD>` variables, and nested
settings (`nested(...)`) from their own prefix. A missing or malformed value raises `SettingsError`
naming the variable; entry points turn it into a one-line message and a non-zero exit.
"""

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self, get_type_hints


class SettingsError(Exception):
    """A required environment variable is missing or malformed."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


class Environment:
    """Reads typed values from an environment mapping (os.environ by default)."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = os.environ if values is None else values

    def text(self, name: str, default: str | None = None) -> str:
        """A non-empty string; the default when unset, or an error when there is none."""
        value = self._values.get(name, "").strip()
        if value:
            return value
        if default is None:
            raise SettingsError(name, "is required but not set")
        return default

    def integer(self, name: str, default: int, *, minimum: int = 0, maximum: int = 2**31 - 1) -> int:
        """A whole number within [minimum, maximum]."""
        raw = self._values.get(name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(name, f"must be a whole number, got {raw!r}") from None
        if not minimum <= value <= maximum:
            raise SettingsError(name, f"must be between {minimum} and {maximum}, got {value}")
        return value

    def seconds(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        """A duration in seconds, fractions allowed."""
        raw = self._values.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(name, f"must be a number of seconds, got {raw!r}") from None
        if not math.isfinite(value):
            raise SettingsError(name, f"must be a finite number of seconds, got {raw!r}")
        if value < minimum:
            raise SettingsError(name, f"must be at least {minimum}, got {value}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        """A yes/no switch: true/false, yes/no, on/off or 1/0."""
        raw = self._values.get(name, "").strip().lower()
        if not raw:
            return default
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        raise SettingsError(name, f"must be true or false, got {raw!r}")

    def address(self, name: str, default: str) -> str:
        """A listen or target address `host:port` (port 0 picks a free port)."""
        value = self.text(name, default)
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or int(port) > 65535:
            raise SettingsError(name, f"must look like host:port, got {value!r}")
        return value

    def database_url(self, name: str) -> str:
        """A PostgreSQL URL (`postgresql://user:password@host:port/database`)."""
        value = self.text(name)
        if not value.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
            raise SettingsError(name, "must be a postgresql:// URL")
        return value


Reader = Callable[[Environment, str, Any], Any]
"""Reads one variable: (environment, variable name, default or None when required) -> value."""

_READER = "settings.reader"
_VARIABLE = "settings.variable"
_PREFIX = "settings.prefix"
_DEFAULTS = "settings.defaults"


def setting(default: Any = dataclasses.MISSING, *, variable: str = "", reader: Reader | None = None) -> Any:
    """A settings field: its default (none: required), its variable's name after the prefix (the
    field's name in capitals unless given), and how it is read (by the field's type unless given)."""
    return dataclasses.field(default=default, metadata={_READER: reader, _VARIABLE: variable})


def nested(prefix: str = "", **defaults: Any) -> Any:
    """A field holding settings of its own, read from `<PREFIX>_<prefix><FIELD>` variables, with
    `defaults` replacing the nested class's own (e.g. a service's listen address)."""
    return dataclasses.field(metadata={_PREFIX: prefix, _DEFAULTS: defaults})


def at_least(minimum: float) -> Reader:
    """Seconds (fractions allowed) no smaller than `minimum`."""
    return lambda env, name, default: env.seconds(name, default, minimum=minimum)


def between(minimum: int, maximum: int = 2**31 - 1) -> Reader:
    """A whole number within [minimum, maximum]."""
    return lambda env, name, default: env.integer(name, default, minimum=minimum, maximum=maximum)


def address(env: Environment, name: str, default: str) -> str:
    """A `host:port`."""
    return env.address(name, default)


def optional_address(env: Environment, name: str, default: str) -> str:
    """A `host:port`, or empty when unset."""
    return env.address(name, default) if env.text(name, "") else ""


def database_url(env: Environment, name: str, default: object) -> str:
    """A PostgreSQL URL; always required."""
    return env.database_url(name)


def _reader_of_type(kind: object) -> Reader:
    readers: dict[object, Reader] = {
        bool: lambda env, name, default: env.flag(name, default),
        int: lambda env, name, default: env.integer(name, default),
        float: lambda env, name, default: env.seconds(name, default),
        str: lambda env, name, default: env.text(name, default),
    }
    if kind not in readers:
        raise TypeError(f"a settings field of type {kind!r} needs a reader")
    return readers[kind]


def read_settings(cls: type[Any], env: Environment, prefix: str, **defaults: Any) -> Any:
    """The settings dataclass `cls` read from `<prefix>_<FIELD>` variables; `defaults` replace the
    fields' own."""
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if _PREFIX in field.metadata:
            nested_prefix = f"{prefix}_{field.metadata[_PREFIX]}".rstrip("_")
            values[field.name] = read_settings(hints[field.name], env, nested_prefix, **field.metadata[_DEFAULTS])
            continue
        variable = f"{prefix}_{field.metadata.get(_VARIABLE) or field.name.upper()}"
        default = defaults.get(field.name, field.default)
        reader = field.metadata.get(_READER) or _reader_of_type(hints[field.name])
        values[field.name] = reader(env, variable, None if default is dataclasses.MISSING else default)
    return cls(**values)


class FromEnvironment:
    """Mixin of a settings dataclass read from `<PREFIX>_...` variables."""

    PREFIX: ClassVar[str]
    """The variables' prefix, e.g. `LOYALTY`."""

    @classmethod
    def from_environment(cls, env: Environment | None = None) -> Self:
        """Reads and validates the settings; SettingsError names the bad variable."""
        settings: Self = read_settings(cls, env or Environment(), cls.PREFIX)
        return settings


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """How a gRPC server listens and protects itself (`<PREFIX>_GRPC_ADDRESS`, `<PREFIX>_MAX_...`)."""

    address: str = setting("127.0.0.1:0", variable="GRPC_ADDRESS", reader=address)
    """Where to listen, `host:port`; port 0 picks a free port (tests). Each service names its own default."""
    max_concurrent_rpcs: int = setting(64, reader=between(1))
    """Calls at work at once; more wait in a short fair queue (health and reflection are never held back)."""
    max_queued_rpcs: int = setting(128, reader=between(0))
    """Calls waiting for a slot, all callers together; beyond it the busiest caller's newest is refused."""
    max_queue_wait_seconds: float = setting(0.25, reader=at_least(0.0))
    """Longest a call waits for a slot before RESOURCE_EXHAUSTED, so admitted calls stay fast."""
    min_deadline_seconds: float = setting(0.005, reader=at_least(0.0))
    """A call arriving with less time left than this is DEADLINE_EXCEEDED at once, before any work."""
    max_message_bytes: int = setting(4 * 1024 * 1024, reader=between(1024))
    """Largest request or response message accepted."""
    workers: int = setting(1, reader=between(1, 64))
    """Server processes sharing the port (SO_REUSEPORT); background work runs in the first only."""
    shutdown_drain_seconds: float = 2.0
    """After SIGTERM, how long health says NOT_SERVING while calls are still accepted, so that load
    balancers and Kubernetes stop routing here before the server stops accepting."""
    shutdown_grace_seconds: float = 10.0
    """How long in-flight calls may run once the server stops accepting, before they are cancelled."""

    @classmethod
    def from_environment(cls, env: Environment, prefix: str, default_address: str) -> "ServerSettings":
        """Reads `<PREFIX>_GRPC_ADDRESS`, `<PREFIX>_MAX_CONCURRENT_RPCS` and friends."""
        settings: ServerSettings = read_settings(cls, env, prefix, address=default_address)
        return settings


@dataclass(frozen=True, kw_only=True)
class RetentionSettings:
    """How long the chassis keeps the rows of its own tables (`<PREFIX>_DATABASE_...`, see `chassis.retention`)."""

    request_id_retention_seconds: float = setting(7 * 86400.0, reader=at_least(3600.0))
    """How long a request id's first answer is kept for retries (`<PREFIX>_DATABASE_REQUEST_ID_RETENTION_SECONDS`)."""
    outbox_retention_seconds: float = setting(30 * 86400.0, reader=at_least(3600.0))
    """How long the feed keeps an event for consumers behind (`<PREFIX>_DATABASE_OUTBOX_RETENTION_SECONDS`)."""
    applied_events_margin: int = setting(100_000, reader=between(0))
    """Feed positions below a consumer's cursor whose applied ids stay, for a replica whose stream opened
    from an older cursor (`<PREFIX>_DATABASE_APPLIED_EVENTS_MARGIN`)."""
    prune_interval_seconds: float = setting(300.0, reader=at_least(0.05))
    """How often each table is pruned (`<PREFIX>_DATABASE_PRUNE_INTERVAL_SECONDS`); again at once while a
    batch came back full."""
    prune_batch_size: int = setting(1000, reader=between(1, 100_000))
    """Most rows one pruning statement deletes, so that each transaction stays short
    (`<PREFIX>_DATABASE_PRUNE_BATCH_SIZE`)."""


@dataclass(frozen=True, kw_only=True)
class DatabaseSettings:
    """How a service reaches its own PostgreSQL database (`<PREFIX>_DATABASE_...`)."""

    url: str = setting(reader=database_url)
    """PostgreSQL URL of the service's database (`<PREFIX>_DATABASE_URL`, required)."""
    pool_size: int = setting(10, reader=between(1, 1000))
    """Connections kept open in the pool."""
    statement_timeout_seconds: float = setting(5.0, reader=at_least(0.1))
    """Longest a single statement may run before PostgreSQL cancels it."""
    trace_statements: bool = False
    """A span for every SQL statement (`<PREFIX>_DATABASE_TRACE_STATEMENTS`); by default one per transaction."""
    retention: RetentionSettings = dataclasses.field(
        default_factory=RetentionSettings, metadata={_PREFIX: "", _DEFAULTS: {}}
    )
    """How long the chassis' own tables keep their rows (`<PREFIX>_DATABASE_REQUEST_ID_RETENTION_SECONDS`, ...)."""

    @classmethod
    def from_environment(cls, env: Environment, prefix: str) -> "DatabaseSettings":
        """Reads `<PREFIX>_DATABASE_URL` (required), `<PREFIX>_DATABASE_POOL_SIZE` and
        `<PREFIX>_DATABASE_STATEMENT_TIMEOUT_SECONDS`."""
        settings: DatabaseSettings = read_settings(cls, env, f"{prefix}_DATABASE")
        return settings
