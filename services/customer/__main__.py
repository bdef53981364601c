"""Customer service entry point: `python -m services.customer [serve|migrate]`."""

from services.customer.app import CUSTOMER

CUSTOMER.main()
