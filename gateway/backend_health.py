"""The gateway's view of its backends' health, followed with the health service's `Watch` stream so
that a backend going down or coming back shows in the gateway's own health at once."""

import asyncio
import logging
from collections.abc import Callable, Mapping

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

log = logging.getLogger("crm.gateway.health")

# A Watch is renewed this often, so that no outgoing call is without a deadline.
WATCH_SECONDS = 60.0
_INITIAL_BACKOFF_SECONDS = 0.1
_MAX_BACKOFF_SECONDS = 2.0


class BackendHealth:
    """Follows each exposed service's status on its backend; reports every change to its listeners."""

    def __init__(self, channels: Mapping[str, grpc.aio.Channel]) -> None:
        self._channels = channels
        self._listeners: list[Callable[[Mapping[str, bool]], None]] = []
        self._serving: dict[str, bool] = dict.fromkeys(channels, False)
        self._tasks: list[asyncio.Task[None]] = []

    def listen(self, listener: Callable[[Mapping[str, bool]], None]) -> None:
        """Calls `listener(readiness)` on every change of a backend's status."""
        self._listeners.append(listener)

    def readiness(self) -> dict[str, bool]:
        """Each exposed service's last known status; the gateway itself serves while any is down."""
        return {"": True, **self._serving}

    async def current(self) -> Mapping[str, bool]:
        """Readiness as the server polls it (no network: the watches keep it current)."""
        return self.readiness()

    def start(self) -> None:
        """Starts one watch per exposed service."""
        self._tasks = [
            asyncio.create_task(self._follow(name, channel), name=f"health-{name}")
            for name, channel in self._channels.items()
        ]

    async def stop(self) -> None:
        """Ends the watches."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _follow(self, service_name: str, channel: grpc.aio.Channel) -> None:
        stub = health_pb2_grpc.HealthStub(channel)
        backoff = _INITIAL_BACKOFF_SECONDS
        while True:
            try:
                stream = stub.Watch(health_pb2.HealthCheckRequest(service=service_name), timeout=WATCH_SECONDS)
                async for answer in stream:
                    self._set(service_name, answer.status == health_pb2.HealthCheckResponse.SERVING)
                    backoff = _INITIAL_BACKOFF_SECONDS
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED and self._serving[service_name]:
                    continue  # the watch's planned renewal
                log.debug("health of %s unknown (%s)", service_name, error.code().name)
            self._set(service_name, False)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)

    def _set(self, service_name: str, serving: bool) -> None:
        if self._serving[service_name] != serving:
            self._serving[service_name] = serving
            log.info("%s is %s", service_name, "serving" if serving else "not serving")
            for listener in self._listeners:
                listener(self.readiness())
