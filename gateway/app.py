"""Assembles the gateway: backend channels, the forwarder, backend-derived health and the server."""

import asyncio
from collections.abc import Mapping

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chassis.channels import open_channel
from chassis.server import ServiceServer, build_server
from gateway.forwarding import Forwarder
from gateway.routes import EXPOSED_SERVICES
from gateway.settings import GatewaySettings

ERROR_DOMAIN = "gateway.crm"
HEALTH_CHECK_TIMEOUT_SECONDS = 1.0


def build_gateway_server(settings: GatewaySettings) -> ServiceServer:
    """The gateway, bound to its port, not yet started."""
    # One channel per backend address, shared by every service that backend serves.
    targets = settings.backend_targets
    by_target = {
        target: open_channel(
            target,
            service_names=[name for name, t in targets.items() if t == target],
            max_message_bytes=settings.server.max_message_bytes,
        )
        for target in set(targets.values())
    }
    channels = {name: by_target[target] for name, target in targets.items()}
    forwarder = Forwarder(channels, settings.max_deadline_seconds)

    async def backends_ready() -> Mapping[str, bool]:
        names = list(channels)
        answers = await asyncio.gather(*(_serving(channels[name], name) for name in names))
        # The gateway itself serves while any backend is down; each service's status tells which.
        return {"": True, **dict(zip(names, answers, strict=True))}

    server = build_server(
        settings=settings.server,
        error_domain=ERROR_DOMAIN,
        service_names=[service.name for service in EXPOSED_SERVICES],
        register=lambda grpc_server: grpc_server.add_generic_rpc_handlers(forwarder.handlers(EXPOSED_SERVICES)),
        readiness=backends_ready,
        readiness_interval_seconds=settings.health_check_interval_seconds,
        trust_caller_metadata=False,
    )

    async def close_channels() -> None:
        for channel in by_target.values():
            await channel.close()

    server.on_stop.append(close_channels)
    return server


async def _serving(channel: grpc.aio.Channel, service_name: str) -> bool:
    """Whether the backend reports the service SERVING."""
    try:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service_name), timeout=HEALTH_CHECK_TIMEOUT_SECONDS
        )
    except grpc.aio.AioRpcError:
        return False
    serving: bool = response.status == health_pb2.HealthCheckResponse.SERVING
    return serving
