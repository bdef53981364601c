"""Complaints service entry point: `python -m services.complaints [serve|migrate]`."""

from services.complaints.app import COMPLAINTS

COMPLAINTS.main()
