"""Gateway entry point: `python -m gateway`."""

from chassis.server import run_process
from gateway.app import build_gateway_server
from gateway.settings import GatewaySettings


async def serve() -> None:
    """Serves until SIGTERM or SIGINT."""
    await build_gateway_server(GatewaySettings.from_environment()).serve_until_signalled()


if __name__ == "__main__":
    run_process("gateway", serve)
