"""Use cases of the loyalty ledger over a database session: open accounts, post and reverse points,
read balances and entries. Every change and its outbox event share the caller's transaction."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from chassis.caller import current_caller
from chassis.errors import not_found
from chassis.outbox import append_event
from chassis.pagination import PageRequest, next_page_token
from crm.loyalty.v1 import events_pb2
from services.loyalty import ledger, store
from services.loyalty.ledger import Account, Entry, Posting
from services.loyalty.mapping import account_name, account_to_proto, entry_name, entry_to_proto

AGGREGATE_TYPE = "loyalty_account"


@dataclass(frozen=True)
class EntryPage:
    """A page of entries and the token of the next one."""

    items: list[Entry]
    next_page_token: str


async def open_account(session: AsyncSession, account_id: uuid.UUID) -> Account:
    """Opens the account, or returns it unchanged when it is open already."""
    now = datetime.now(UTC)
    if await store.open_account(session, account_id, actor=current_caller().subject, now=now):
        account = Account(id=account_id, create_time=now, update_time=now)
        await append_event(
            session,
            aggregate_type=AGGREGATE_TYPE,
            aggregate_id=account_name(account_id),
            payload=events_pb2.AccountOpened(account=account_to_proto(account)),
            now=now,
        )
        return account
    return await get_account(session, account_id)


async def get_account(session: AsyncSession, account_id: uuid.UUID) -> Account:
    """The account; NOT_FOUND when the customer has none."""
    account = await store.get_account(session, account_id)
    if account is None:
        raise not_found("account", account_name(account_id))
    return account


async def post_points(session: AsyncSession, account_id: uuid.UUID, posting: Posting, request_id: str) -> Entry:
    """Applies a checked posting to the locked account and records its entry."""
    account = await _lock(session, account_id)
    return await _record(session, account, posting, request_id)


async def reverse_entry(
    session: AsyncSession, account_id: uuid.UUID, number: int, reason: str, request_id: str
) -> Entry:
    """Writes the exact opposite of one entry, at most once."""
    account = await _lock(session, account_id)
    target = await store.get_entry(session, account_id, number)
    if target is None:
        raise not_found("entry", entry_name(account_id, number))
    already_reversed = await store.is_reversed(session, account_id, number)
    posting = ledger.reversal(target, already_reversed=already_reversed, reason=reason)
    return await _record(session, account, posting, request_id)


async def list_entries(
    session: AsyncSession, account_id: uuid.UUID, page: PageRequest, criteria: dict[str, str]
) -> EntryPage:
    """A page of the account's entries, newest first."""
    await get_account(session, account_id)
    entries = await store.list_entries(session, account_id, page)
    if len(entries) <= page.size:
        return EntryPage(entries, "")
    shown = entries[: page.size]
    return EntryPage(shown, next_page_token([shown[-1].number], criteria))


async def _lock(session: AsyncSession, account_id: uuid.UUID) -> Account:
    account = await store.lock_account(session, account_id)
    if account is None:
        raise not_found("account", account_name(account_id))
    return account


async def _record(session: AsyncSession, account: Account, posting: Posting, request_id: str) -> Entry:
    updated, entry = ledger.post(account, posting, actor=current_caller().subject, now=datetime.now(UTC))
    await store.record_posting(session, account, updated, entry, request_id)
    await append_event(
        session,
        aggregate_type=AGGREGATE_TYPE,
        aggregate_id=account_name(account.id),
        payload=events_pb2.EntryPosted(entry=entry_to_proto(entry)),
        now=entry.create_time,
    )
    return entry
