"""Assembles the gateway: backend channels, the forwarder, backend health followed by Watch, the server."""

from chassis.channels import open_channel
from chassis.server import ServiceServer, build_server
from gateway.backend_health import BackendHealth
from gateway.forwarding import ERROR_DOMAIN, Forwarder
from gateway.routes import EXPOSED_SERVICES
from gateway.settings import GatewaySettings


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
    backend_health = BackendHealth(channels)
    server = build_server(
        settings=settings.server,
        error_domain=ERROR_DOMAIN,
        service_names=[service.name for service in EXPOSED_SERVICES],
        register=lambda grpc_server: grpc_server.add_generic_rpc_handlers(forwarder.handlers(EXPOSED_SERVICES)),
        readiness=backend_health.current,
        trust_caller_metadata=False,
    )
    backend_health.listen(server.report)

    async def close_channels() -> None:
        for channel in by_target.values():
            await channel.close()

    server.on_start.append(backend_health.start)
    server.on_stop.extend([backend_health.stop, close_channels])
    return server
