"""Offers service entry point: `python -m services.offers [serve|migrate]`."""

from services.offers.app import OFFERS

OFFERS.main()
