"""Customer service entry point: `python -m services.customer [serve|migrate]`."""

import sys

from chassis.server import run_process
from services.customer.app import build_customer_server, migrate_customer_database
from services.customer.settings import CustomerSettings


async def serve() -> None:
    """Serves until SIGTERM or SIGINT."""
    await build_customer_server(CustomerSettings.from_environment()).serve_until_signalled()


async def migrate() -> None:
    """Applies pending migrations, then exits."""
    migrate_customer_database(CustomerSettings.from_environment())


if __name__ == "__main__":
    run_process("customer-service", migrate if sys.argv[1:] == ["migrate"] else serve)
