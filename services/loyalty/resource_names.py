"""The loyalty service's resource names (AIP-122), each pattern written once and used both to build
names and to parse them."""

import uuid

from chassis.names import CUSTOMER, ResourcePattern

ACCOUNT = ResourcePattern("accounts/{account}")
"""A customer's points account; its id is the customer's."""
ENTRY = ResourcePattern("accounts/{account}/entries/{entry}")
"""One line of an account's ledger, numbered 1, 2, 3... per account."""
RESERVATION = ResourcePattern("accounts/{account}/reservations/{reservation}")
"""Points and one piece of a prize held at a partner shop."""
BALANCE = ResourcePattern("accounts/{account}/balance")
"""An account's points available, reserved and lapsing soon."""
TIER_STATUS = ResourcePattern("accounts/{account}/tierStatus")
"""Where an account stands in the tiers."""
REWARD = ResourcePattern("rewards/{reward}")
"""An item of the rewards catalog."""
PROGRAM = ResourcePattern("program")
"""The program in force (a singleton)."""
EARNING_RULE = ResourcePattern("program/earningRules/{rule}")
"""One earning rule of the program."""
CUSTOMER_PAYMENT = ResourcePattern("customers/{customer}/payments/{payment}")
"""A payment the customer service announces; its id is the billing system's, not a UUID."""


def customer_id_in(name: str, pattern: ResourcePattern, field: str) -> uuid.UUID:
    """The customer id that starts a customer service's resource name of shape `pattern`
    (`customers/{customer}/...`); INVALID_ARGUMENT naming `field` when the name has another shape."""
    return CUSTOMER.parse_uuid(CUSTOMER.format(pattern.parse(name, field)[0]), field)
