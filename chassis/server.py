"""The gRPC server factory every service and the gateway are built with.

A server gets: the library's health service (a status per service that follows readiness — pushed at
once when a dependency is lost or regained, polled as a fallback — plus `liveness`, SERVING while the
process runs; NOT_SERVING during shutdown), server reflection, bounded message size, admission under
load that never holds back health or reflection, the telemetry and call interceptors, and graceful
shutdown on SIGTERM/SIGINT (stop accepting, finish in-flight calls, then release resources). Tests
bind it to port 0.
"""

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from chassis.admission import Admission, AdmissionLimits
from chassis.guard import CallGuard
from chassis.interceptors import ServiceCallInterceptor
from chassis.logs import configure_logging
from chassis.settings import ServerSettings, SettingsError
from chassis.telemetry import (
    configure_telemetry,
    shutdown_telemetry,
)

log = logging.getLogger("crm.server")

# Readiness answers for the whole server (bool) or per served service (name -> ready).
ReadinessState = bool | Mapping[str, bool]
Readiness = Callable[[], Awaitable[ReadinessState]]
LIVENESS = "liveness"
"""The health service name a liveness probe asks: SERVING while the process is alive, whatever its
dependencies say (readiness is the overall status, service "")."""
# While not ready, readiness is polled this often, so recovery shows at once even without traffic.
_NOT_READY_POLL_SECONDS = 0.25
Registration = Callable[[grpc.aio.Server], None]


class HealthServicer(health.aio.HealthServicer):  # type: ignore[misc]  # grpc_health ships no types
    """The library's health service, whose Watch streams end when the server stops accepting calls:
    left open, each watcher (the gateway, a load balancer) would hold the shutdown for the whole grace
    period."""

    def __init__(self) -> None:
        super().__init__()
        self._watches: set[asyncio.Future[None]] = set()
        self._ended = False

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> None:
        watching = asyncio.ensure_future(super().Watch(request, context))
        self._watches.add(watching)
        try:
            await watching
        except asyncio.CancelledError:
            if not (self._ended and watching.cancelled()):
                raise  # the call itself was cancelled, not ended by the stop
        finally:
            self._watches.discard(watching)

    def end_watches(self) -> None:
        """Ends every Watch stream with OK; watchers reconnect, to a server that is stopping."""
        self._ended = True
        for watching in self._watches:
            watching.cancel()


class ListenError(Exception):
    """The server cannot listen where it was told (the port is taken, or the host is not this machine's)."""


@dataclass
class ServiceServer:
    """A built server: call `start`, then `stop` (or `serve_until_signalled`)."""

    server: grpc.aio.Server
    port: int
    service_names: Sequence[str]
    more_ports: Mapping[str, int]
    """The port each further listener bound, by its name (e.g. the gateway's `partner_port`)."""
    health: HealthServicer
    readiness: Readiness
    settings: ServerSettings
    readiness_interval_seconds: float = 2.0
    on_start: list[Callable[[], None]] = field(default_factory=list)
    """Background work to start once serving (outbox sequencer, evaluators)."""
    on_stopping: list[Callable[[], None]] = field(default_factory=list)
    """Called as the server stops accepting calls: long-lived streams (event feeds) end at once instead
    of holding shutdown for the whole grace period, and their clients reconnect elsewhere."""
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Releases run in order after the server stopped (stop background work first, close pools last)."""
    _watch: asyncio.Task[None] | None = None
    _reported: asyncio.Event = field(default_factory=asyncio.Event)
    _latest: ReadinessState = True
    _ready: bool = False

    async def start(self) -> None:
        """Starts serving, with health following readiness from the first second."""
        await self.server.start()
        await self.health.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
        await self._publish(await self.readiness())
        self._watch = asyncio.create_task(self._watch_readiness(), name="readiness")
        for start_background_work in self.on_start:
            start_background_work()
        log.info("listening", extra={"port": self.port, **self.more_ports, "services": list(self.service_names)})

    async def stop(self) -> None:
        """Reports NOT_SERVING for the drain period while still serving, then stops accepting, lets
        in-flight calls finish within the grace period, and releases resources (database pool,
        outgoing channels)."""
        if self._watch is not None:
            self._watch.cancel()
        await self.health.enter_graceful_shutdown()
        await asyncio.sleep(self.settings.shutdown_drain_seconds)
        for end_long_lived_calls in self.on_stopping:
            end_long_lived_calls()
        self.health.end_watches()
        await self.server.stop(self.settings.shutdown_grace_seconds)
        for release in self.on_stop:
            await release()
        log.info("stopped")

    async def serve_until_signalled(self) -> None:
        """Serves until SIGTERM or SIGINT, then stops gracefully."""
        stop_requested = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop_requested.set)
        await self.start()
        await stop_requested.wait()
        log.info("shutting down")
        await self.stop()

    def report(self, readiness: ReadinessState) -> None:
        """Publishes a change of readiness at once (a dependency was just lost or regained)."""
        self._latest = readiness
        self._reported.set()

    async def _watch_readiness(self) -> None:
        while True:
            interval = self.readiness_interval_seconds if self._ready else _NOT_READY_POLL_SECONDS
            try:
                await asyncio.wait_for(self._reported.wait(), timeout=interval)
            except TimeoutError:
                await self._publish(await self.readiness())
                continue
            self._reported.clear()
            await self._publish(self._latest)

    async def _publish(self, readiness: ReadinessState) -> None:
        if isinstance(readiness, bool):
            per_service = dict.fromkeys(self.service_names, readiness)
        else:
            per_service = {name: readiness.get(name, False) for name in self.service_names}
        # The whole server is ready when every service is, unless readiness says otherwise for "".
        overall = readiness.get("", all(per_service.values())) if isinstance(readiness, Mapping) else readiness
        per_service[""] = overall
        self._ready = overall
        for name, ready in per_service.items():
            serving = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
            await self.health.set(name, serving)


async def always_ready() -> bool:
    """Readiness of a server with no dependency of its own."""
    return True


def build_server(
    *,
    settings: ServerSettings,
    error_domain: str,
    service_names: Sequence[str],
    register: Registration,
    readiness: Readiness = always_ready,
    readiness_interval_seconds: float = 2.0,
    trust_caller_metadata: bool = True,
    guard: CallGuard | None = None,
    credentials: grpc.ServerCredentials | None = None,
    more_listeners: Mapping[str, tuple[str, grpc.ServerCredentials | None]] | None = None,
) -> ServiceServer:
    """A server with the chassis' health, reflection, limits and interceptors, bound but not started.

    `register` adds the service's own servicers (or generic handlers); `service_names` are the full
    names they serve, for health and reflection. Only servers behind the gateway trust caller
    metadata (`trust_caller_metadata`); the gateway itself does not, and checks every call with its
    `guard` instead. With `credentials` the main address serves TLS; `more_listeners` are further
    named addresses with their own credentials (the gateway's partner port, which requires client
    certificates).
    """
    admission = Admission(
        AdmissionLimits(
            max_concurrent=settings.max_concurrent_rpcs,
            max_queued=settings.max_queued_rpcs,
            max_queue_wait_seconds=settings.max_queue_wait_seconds,
            min_remaining_seconds=settings.min_deadline_seconds,
        )
    )
    server = grpc.aio.server(
        interceptors=[
            ServiceCallInterceptor(
                error_domain, admission=admission, trust_caller_metadata=trust_caller_metadata, guard=guard
            ),
        ],
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            # Only workers of one service meant to share a port may: anything else is refused below.
            ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
        ],
    )
    register(server)
    health_servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    if settings.workers > 1 and settings.address.endswith(":0"):
        raise ListenError(f"cannot listen on {settings.address}: {settings.workers} workers need a fixed port")
    port = _listen(server, settings.address, credentials)
    more_ports = {name: _listen(server, address, more) for name, (address, more) in (more_listeners or {}).items()}
    return ServiceServer(
        server=server,
        port=port,
        more_ports=more_ports,
        service_names=service_names,
        health=health_servicer,
        readiness=readiness,
        settings=settings,
        readiness_interval_seconds=readiness_interval_seconds,
    )


def _listen(server: grpc.aio.Server, address: str, credentials: grpc.ServerCredentials | None) -> int:
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError:
        # SO_REUSEPORT is off, so a port another process holds is refused here instead of shared.
        raise ListenError(f"cannot listen on {address}: the port is taken or the host is not local") from None
    if port == 0:
        raise ListenError(f"cannot listen on {address}")
    return port


def run_process(service_name: str, main: Callable[[], Coroutine[object, object, None]]) -> None:
    """Entry-point wrapper: logging and telemetry first, a clear message and exit 2 on bad settings."""
    configure_logging(service_name)
    configure_telemetry(service_name)
    try:
        asyncio.run(main())
    except SettingsError as error:
        print(f"{service_name}: configuration error: {error}", file=sys.stderr)
        sys.exit(2)
    except ListenError as error:
        print(f"{service_name}: {error}", file=sys.stderr)
        sys.exit(2)
    finally:
        shutdown_telemetry()
