"""Customers: profiles, lifecycle, lines, consent and search; the system of record's core part."""
