"""A service assembled by the chassis: a service's `app.py` lists its parts, the chassis does the rest.

The chassis gives every service with a database the same frame: an instrumented engine and its
`Database`, the clock, the outbox sequencer and the event feed (for producers), the pruning of its
chassis tables (`chassis.retention`), background work started once serving and stopped in reverse
order before the pool closes, event consumers that run as a named actor, and the `serve | migrate`
entry point. A service's definition names its process, its error domain, its settings class, its
migrations and the function that adds its parts:

    def assemble(service: Service, settings: LoyaltySettings) -> None:
        service.serve(add_LoyaltyServiceServicer_to_server, LoyaltyServicer(service.database, service.clock))
        service.run_every("loyalty-schedule", settings.schedule_interval_seconds, step, actor=SCHEDULE_ACTOR)

    LOYALTY = ServiceDefinition("loyalty-service", "loyalty.crm", LoyaltySettings, assemble, MIGRATIONS)
"""

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Protocol, TypeVar

import grpc

from chassis.background import RepeatingTask
from chassis.caller import Caller, set_current_caller
from chassis.clock import SYSTEM_CLOCK, Clock
from chassis.database import Database, create_engine, migrate
from chassis.event_consumer import EventConsumer, EventHandler
from chassis.event_feed import EventFeedServicer
from chassis.outbox import outbox_sequencer
from chassis.retention import retention_jobs
from chassis.server import ServiceServer, build_server, run_process
from chassis.settings import DatabaseSettings, Environment, ServerSettings
from chassis.telemetry import instrument_engine
from chassis.workers import stopping_when_orphaned, worker_processes
from crm.common.v1 import events_pb2_grpc

Servicer = TypeVar("Servicer")
AddToServer = Callable[[Servicer, grpc.aio.Server], None]
"""A generated `add_<Service>Servicer_to_server` function."""


class BackgroundWork(Protocol):
    """Something a service runs beside its calls: started once serving, stopped before the pool closes."""

    def start(self) -> None:
        """Starts on the running event loop."""
        ...

    async def stop(self) -> None:
        """Stops and waits until stopped."""
        ...


class ServiceSettingsShape(Protocol):
    """What the chassis reads of a service's settings."""

    @property
    def server(self) -> ServerSettings:
        """How the server listens."""
        ...

    @property
    def database(self) -> DatabaseSettings:
        """The service's database."""
        ...


Settings = TypeVar("Settings", bound=ServiceSettingsShape)


class Service:
    """A service being assembled: the parts `app.py` adds, over the database and clock it is given."""

    def __init__(
        self, name: str, *, settings: ServiceSettingsShape, clock: Clock, produces_events: bool, background: bool = True
    ) -> None:
        self.name = name
        # Extra worker processes serve calls only: numbering, consuming and schedules run once, in the first.
        self._runs_background = background
        engine = create_engine(settings.database, application_name=name)
        if settings.database.trace_statements:
            instrument_engine(engine)
        self.database = Database(engine)
        """The service's own database."""
        self.clock = clock
        """Where every part of the service reads the time."""
        self._retention = settings.database.retention
        self._follows_feeds = False
        self._registrations: list[Callable[[grpc.aio.Server], None]] = []
        self._service_names: list[str] = []
        self._background: list[BackgroundWork] = []
        self._event_feed: EventFeedServicer | None = None
        if produces_events:
            self._event_feed = EventFeedServicer(self.database)
            self.serve(events_pb2_grpc.add_EventFeedServiceServicer_to_server, self._event_feed)
            self.run_in_background(outbox_sequencer(self.database))

    def serve(self, add_to_server: AddToServer[Servicer], servicer: Servicer) -> None:
        """Serves `servicer` (health and reflection learn its service name from the registration)."""
        self._service_names.extend(_service_names(add_to_server, servicer))
        self._registrations.append(lambda server: add_to_server(servicer, server))

    def run_in_background(self, work: BackgroundWork) -> None:
        """Runs `work` while the server serves (started in the order given, stopped in reverse)."""
        if self._runs_background:
            self._background.append(work)

    def run_every(
        self, name: str, interval_seconds: float, step: Callable[[], Awaitable[object]], *, actor: Caller
    ) -> None:
        """Runs `step` every `interval_seconds` as `actor` (recorded as the author of its changes)."""

        async def step_as_actor() -> bool:
            set_current_caller(actor)
            await step()
            return False

        self.run_in_background(RepeatingTask(name, step_as_actor, interval_seconds))

    def follow(
        self,
        *,
        consumer: str,
        producer: str,
        feed: str,
        handler: EventHandler,
        event_types: Sequence[str],
        actor: Caller,
    ) -> EventConsumer:
        """Applies the events of `producer`'s feed at `feed` (`host:port`) with `handler`, each exactly
        once, as `actor`, while the server runs."""
        follower = EventConsumer(
            name=consumer,
            producer=producer,
            feed=feed,
            database=self.database,
            handler=handler,
            event_types=event_types,
            clock=self.clock,
        )
        self.run_in_background(_Following(follower, actor))
        self._follows_feeds = True
        return follower

    def build(self, settings: ServerSettings, error_domain: str) -> ServiceServer:
        """The server with every part, bound to its port, not yet started."""
        for job in retention_jobs(
            self.database,
            self.clock,
            self._retention,
            outbox=self._event_feed is not None,
            applied_events=self._follows_feeds,
        ):
            self.run_in_background(job)

        def register(server: grpc.aio.Server) -> None:
            for registration in self._registrations:
                registration(server)

        server = build_server(
            settings=settings,
            error_domain=error_domain,
            service_names=self._service_names,
            register=register,
            readiness=self.database.is_reachable,
        )
        # A call that lost the database flips readiness at once, and the next that reaches it restores it.
        self.database.reachability.listen(server.report)
        server.on_start.extend(work.start for work in self._background)
        if self._event_feed is not None:
            server.on_stopping.append(self._event_feed.stop_following)
        server.on_stop.extend(work.stop for work in reversed(self._background))
        server.on_stop.append(self.database.close)
        return server


@dataclass(frozen=True)
class ServiceDefinition(Generic[Settings]):
    """What makes a service: its name, error domain, settings, parts and migrations."""

    name: str
    """The process' name in logs, traces and database connections, e.g. `loyalty-service`."""
    error_domain: str
    """The `ErrorInfo.domain` of the service's errors, e.g. `loyalty.crm`."""
    settings: Callable[[Environment | None], Settings]
    """Reads the service's settings from the environment (its settings class' `from_environment`)."""
    assemble: Callable[[Service, Settings], None]
    """Adds the service's parts (servicers, background work, consumers, scheduled work)."""
    migrations: Path
    """The service's Alembic revisions (`migrations/versions`)."""
    produces_events: bool = field(default=True)
    """Whether the service has an outbox to number and serve as an event feed."""

    module: str = field(default="")
    """The package run with `python -m` (`services.loyalty`); extra workers are started with it."""

    def build_server(
        self, settings: Settings, *, clock: Clock = SYSTEM_CLOCK, background: bool = True
    ) -> ServiceServer:
        """The service bound to its port, not yet started; tests hand it a clock they move. Without
        `background` it only serves calls (an extra worker)."""
        service = Service(
            self.name, settings=settings, clock=clock, produces_events=self.produces_events, background=background
        )
        self.assemble(service, settings)
        return service.build(settings.server, self.error_domain)

    def migrate(self, settings: Settings) -> None:
        """Brings the service's database to the newest schema."""
        migrate(settings.database.url, self.migrations)

    def main(self, arguments: Sequence[str] | None = None) -> None:
        """The process entry point: `serve` (the default) until SIGTERM, with `<PREFIX>_WORKERS - 1`
        extra worker processes on the same port; `worker` (one of those); or `migrate` and exit."""
        command = list(sys.argv[1:] if arguments is None else arguments)

        async def serve() -> None:
            settings = self.settings(None)
            async with worker_processes(self.module, settings.server):
                await self.build_server(settings).serve_until_signalled()

        async def serve_as_worker() -> None:
            async with stopping_when_orphaned():
                await self.build_server(self.settings(None), background=False).serve_until_signalled()

        async def migrate_database() -> None:
            self.migrate(self.settings(None))

        commands = {"serve": serve, "worker": serve_as_worker, "migrate": migrate_database}
        chosen = command[0] if command else "serve"
        if len(command) > 1 or chosen not in commands:
            print(f"usage: python -m <service> [serve|migrate], got {' '.join(command)!r}", file=sys.stderr)
            sys.exit(2)
        run_process(self.name, commands[chosen])


class _Following:
    """An event consumer as background work, applying events as its actor."""

    def __init__(self, consumer: EventConsumer, actor: Caller) -> None:
        self._consumer = consumer
        self._actor = actor
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        async def follow() -> None:
            set_current_caller(self._actor)
            await self._consumer.run_until_stopped()

        self._task = asyncio.create_task(follow(), name=f"{self._consumer.name}-events")

    async def stop(self) -> None:
        self._consumer.stop()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.close()


class _RecordingServer:
    """Stands in for a server while a generated `add_..._to_server` registers, to learn the names."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self.names.extend(name for handler in handlers if (name := _handler_service_name(handler)))

    def add_registered_method_handlers(self, service_name: str, handlers: object) -> None:
        if service_name not in self.names:
            self.names.append(service_name)


def _handler_service_name(handler: grpc.GenericRpcHandler) -> str:
    service_name = getattr(handler, "service_name", None)
    return str(service_name()) if callable(service_name) else ""


def _service_names(add_to_server: AddToServer[Servicer], servicer: Servicer) -> list[str]:
    recorder = _RecordingServer()
    add_to_server(servicer, recorder)  # type: ignore[arg-type]  # records what a server would be told
    return recorder.names
