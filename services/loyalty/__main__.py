"""Loyalty service entry point: `python -m services.loyalty [serve|migrate]`."""

from services.loyalty.app import LOYALTY

LOYALTY.main()
