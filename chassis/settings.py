"""Typed settings read once from environment variables at start.

A missing or malformed value raises `SettingsError` naming the variable; entry points turn it into a
one-line message and a non-zero exit.
"""

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass


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


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """How a gRPC server listens and protects itself."""

    address: str
    """Where to listen, `host:port`; port 0 picks a free port (tests)."""
    max_concurrent_rpcs: int = 256
    """Calls served at once; further calls are refused with RESOURCE_EXHAUSTED."""
    max_message_bytes: int = 4 * 1024 * 1024
    """Largest request or response message accepted."""
    shutdown_drain_seconds: float = 2.0
    """After SIGTERM, how long health says NOT_SERVING while calls are still accepted, so that load
    balancers and Kubernetes stop routing here before the server stops accepting."""
    shutdown_grace_seconds: float = 10.0
    """How long in-flight calls may run once the server stops accepting, before they are cancelled."""

    @classmethod
    def from_environment(cls, env: Environment, prefix: str, default_address: str) -> "ServerSettings":
        """Reads `<PREFIX>_GRPC_ADDRESS`, `<PREFIX>_MAX_CONCURRENT_RPCS` and friends."""
        return cls(
            address=env.address(f"{prefix}_GRPC_ADDRESS", default_address),
            max_concurrent_rpcs=env.integer(f"{prefix}_MAX_CONCURRENT_RPCS", 256, minimum=1),
            max_message_bytes=env.integer(f"{prefix}_MAX_MESSAGE_BYTES", 4 * 1024 * 1024, minimum=1024),
            shutdown_drain_seconds=env.seconds(f"{prefix}_SHUTDOWN_DRAIN_SECONDS", 2.0),
            shutdown_grace_seconds=env.seconds(f"{prefix}_SHUTDOWN_GRACE_SECONDS", 10.0),
        )


@dataclass(frozen=True, kw_only=True)
class DatabaseSettings:
    """How a service reaches its own PostgreSQL database."""

    url: str
    """PostgreSQL URL of the service's database."""
    pool_size: int = 10
    """Connections kept open in the pool."""
    statement_timeout_seconds: float = 5.0
    """Longest a single statement may run before PostgreSQL cancels it."""

    @classmethod
    def from_environment(cls, env: Environment, prefix: str) -> "DatabaseSettings":
        """Reads `<PREFIX>_DATABASE_URL` (required), `<PREFIX>_DATABASE_POOL_SIZE` and
        `<PREFIX>_DATABASE_STATEMENT_TIMEOUT_SECONDS`."""
        return cls(
            url=env.database_url(f"{prefix}_DATABASE_URL"),
            pool_size=env.integer(f"{prefix}_DATABASE_POOL_SIZE", 10, minimum=1, maximum=1000),
            statement_timeout_seconds=env.seconds(f"{prefix}_DATABASE_STATEMENT_TIMEOUT_SECONDS", 5.0, minimum=0.1),
        )
