"""Gateway entry point: `python -m gateway [serve|migrate]`."""

import sys

from chassis.server import run_process
from gateway.app import build_gateway_server
from gateway.audit_store import migrate_gateway_database
from gateway.settings import GatewaySettings


async def serve() -> None:
    """Serves until SIGTERM or SIGINT."""
    await build_gateway_server(GatewaySettings.from_environment()).serve_until_signalled()


async def migrate() -> None:
    """Brings the gateway's database (the audit trail) to the newest schema."""
    migrate_gateway_database(GatewaySettings.from_environment().database.url)


if __name__ == "__main__":
    commands = {"serve": serve, "migrate": migrate}
    chosen = sys.argv[1] if len(sys.argv) > 1 else "serve"
    if chosen not in commands or len(sys.argv) > 2:
        print(f"usage: python -m gateway [serve|migrate], got {' '.join(sys.argv[1:])!r}", file=sys.stderr)
        sys.exit(2)
    run_process("gateway", commands[chosen])
