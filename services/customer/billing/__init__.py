"""Billing: invoices and payments from the billing system, and what they say about a customer."""
