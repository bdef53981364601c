"""Loyalty service entry point: `python -m services.loyalty [serve|migrate]`."""

import sys

from chassis.server import run_process
from services.loyalty.app import build_loyalty_server, migrate_loyalty_database
from services.loyalty.settings import LoyaltySettings


async def serve() -> None:
    """Serves until SIGTERM or SIGINT."""
    await build_loyalty_server(LoyaltySettings.from_environment()).serve_until_signalled()


async def migrate() -> None:
    """Applies pending migrations, then exits."""
    migrate_loyalty_database(LoyaltySettings.from_environment())


if __name__ == "__main__":
    run_process("loyalty-service", migrate if sys.argv[1:] == ["migrate"] else serve)
