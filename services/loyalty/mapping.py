"""Translation between the loyalty contract's messages and the ledger's types, both ways.

Malformed resource names are INVALID_ARGUMENT here, naming the field; every other rule lives in
the ledger.
"""

import uuid
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from chassis.errors import invalid_field
from crm.loyalty.v1 import loyalty_pb2
from services.loyalty.ledger import Account, Entry


def account_name(account_id: uuid.UUID) -> str:
    """`accounts/{account}`."""
    return f"accounts/{account_id}"


def entry_name(account_id: uuid.UUID, number: int) -> str:
    """`accounts/{account}/entries/{entry}`."""
    return f"accounts/{account_id}/entries/{number}"


def parse_account_name(name: str, field: str = "name") -> uuid.UUID:
    """The id in `accounts/{account}`; INVALID_ARGUMENT naming `field` when malformed."""
    parts = name.split("/")
    if len(parts) != 2 or parts[0] != "accounts":
        raise invalid_field(field, f"must look like accounts/{{account}}, got {name!r}")
    return _uuid(parts[1], field, name)


def parse_customer_name(name: str, field: str = "customer") -> uuid.UUID:
    """The id in `customers/{customer}`, which is also the id of the customer's account."""
    parts = name.split("/")
    if len(parts) != 2 or parts[0] != "customers":
        raise invalid_field(field, f"must look like customers/{{customer}}, got {name!r}")
    return _uuid(parts[1], field, name)


def parse_entry_name(name: str, field: str = "name") -> tuple[uuid.UUID, int]:
    """The account id and entry number in `accounts/{account}/entries/{entry}`."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "accounts" or parts[2] != "entries":
        raise invalid_field(field, f"must look like accounts/{{account}}/entries/{{entry}}, got {name!r}")
    if not parts[3].isascii() or not parts[3].isdigit() or int(parts[3]) < 1 or len(parts[3]) > 18:
        raise invalid_field(field, f"has no valid entry number: {name!r}")
    return _uuid(parts[1], field, name), int(parts[3])


def account_to_proto(account: Account) -> loyalty_pb2.Account:
    """The Account message of an account."""
    return loyalty_pb2.Account(
        name=account_name(account.id),
        customer=f"customers/{account.id}",
        available_points=account.balance,
        lifetime_earned_points=account.lifetime_earned,
        lifetime_redeemed_points=account.lifetime_redeemed,
        entry_count=account.entry_count,
        create_time=_timestamp(account.create_time),
        update_time=_timestamp(account.update_time),
    )


def entry_to_proto(entry: Entry) -> loyalty_pb2.LedgerEntry:
    """The LedgerEntry message of an entry."""
    return loyalty_pb2.LedgerEntry(
        name=entry_name(entry.account_id, entry.number),
        kind=loyalty_pb2.EntryKind.Value(f"ENTRY_KIND_{entry.kind.value}"),
        points=entry.points,
        balance_after=entry.balance_after,
        reason=entry.reason,
        source_reference=entry.source_reference,
        reversed_entry=entry_name(entry.account_id, entry.reversed_entry) if entry.reversed_entry else "",
        actor=entry.actor,
        create_time=_timestamp(entry.create_time),
    )


def _uuid(text: str, field: str, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise invalid_field(field, f"has no valid account id: {name!r}") from None


def _timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp
