"""Accounts and ledger entries of the loyalty database; every query is keyed by the account.

A posting runs inside the caller's transaction after `lock_account`: the balance update is guarded
by the entry count read under the lock, and the database's CHECK keeps the balance from going below
zero even if the rules above were wrong.
"""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import MetaData, Row, text
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.errors import Aborted
from chassis.idempotency import idempotency_table
from chassis.pagination import PageRequest
from services.loyalty.ledger import Account, Entry, EntryKind

metadata = MetaData()
idempotency_keys = idempotency_table(metadata)


async def open_account(session: AsyncSession, account_id: uuid.UUID, *, actor: str, now: datetime) -> bool:
    """Creates an empty account; False when it exists already."""
    result = await session.execute(
        text(
            "INSERT INTO accounts (id, create_time, creator, update_time) VALUES (:id, :now, :actor, :now) "
            "ON CONFLICT (id) DO NOTHING"
        ),
        {"id": account_id, "now": now, "actor": actor},
    )
    return bool(result.rowcount)


async def get_account(session: AsyncSession, account_id: uuid.UUID) -> Account | None:
    """An account as it stands."""
    row = (await session.execute(text("SELECT * FROM accounts WHERE id = :id"), {"id": account_id})).first()
    return _account(row) if row else None


async def lock_account(session: AsyncSession, account_id: uuid.UUID) -> Account | None:
    """An account, locked until the transaction ends: postings to one account queue up behind each other."""
    row = (await session.execute(text("SELECT * FROM accounts WHERE id = :id FOR UPDATE"), {"id": account_id})).first()
    return _account(row) if row else None


async def record_posting(session: AsyncSession, before: Account, after: Account, entry: Entry, request_id: str) -> None:
    """Writes the account's new state and the entry that explains it, in the caller's transaction."""
    result = await session.execute(
        text(
            "UPDATE accounts SET balance = balance + :points, lifetime_earned = :earned, "
            "lifetime_redeemed = :redeemed, entry_count = entry_count + 1, update_time = :now "
            "WHERE id = :id AND entry_count = :expected_count RETURNING balance"
        ),
        {
            "points": entry.points,
            "earned": after.lifetime_earned,
            "redeemed": after.lifetime_redeemed,
            "now": entry.create_time,
            "id": before.id,
            "expected_count": before.entry_count,
        },
    )
    balance = result.scalar()
    if balance != entry.balance_after:
        # Only possible if the account changed without its lock being held: refuse rather than guess.
        raise Aborted("ACCOUNT_CHANGED", "the account changed concurrently; retry the request")
    await session.execute(
        text(
            "INSERT INTO ledger_entries (account_id, entry, kind, points, balance_after, reason, source_reference, "
            "request_id, reversed_entry, actor, create_time) VALUES (:account_id, :entry, :kind, :points, "
            ":balance_after, :reason, :source_reference, :request_id, :reversed_entry, :actor, :create_time)"
        ),
        {
            "account_id": entry.account_id,
            "entry": entry.number,
            "kind": entry.kind.value,
            "points": entry.points,
            "balance_after": entry.balance_after,
            "reason": entry.reason,
            "source_reference": entry.source_reference,
            "request_id": request_id,
            "reversed_entry": entry.reversed_entry,
            "actor": entry.actor,
            "create_time": entry.create_time,
        },
    )


async def get_entry(session: AsyncSession, account_id: uuid.UUID, number: int) -> Entry | None:
    """One entry of an account."""
    row = (
        await session.execute(
            text("SELECT * FROM ledger_entries WHERE account_id = :a AND entry = :n"), {"a": account_id, "n": number}
        )
    ).first()
    return _entry(row) if row else None


async def is_reversed(session: AsyncSession, account_id: uuid.UUID, number: int) -> bool:
    """Whether a reversal of the entry exists."""
    row = (
        await session.execute(
            text("SELECT 1 FROM ledger_entries WHERE account_id = :a AND reversed_entry = :n"),
            {"a": account_id, "n": number},
        )
    ).first()
    return row is not None


async def list_entries(session: AsyncSession, account_id: uuid.UUID, page: PageRequest) -> list[Entry]:
    """A page of an account's entries, newest first, one more than the page size (to tell if more follow)."""
    after = page.after_int()
    rows = await session.execute(
        text("SELECT * FROM ledger_entries WHERE account_id = :a AND entry < :before ORDER BY entry DESC LIMIT :limit"),
        {"a": account_id, "before": after if after is not None else 2**63 - 1, "limit": page.size + 1},
    )
    return [_entry(row) for row in rows]


def _account(row: Row[Any]) -> Account:
    return Account(
        id=row.id,
        balance=row.balance,
        lifetime_earned=row.lifetime_earned,
        lifetime_redeemed=row.lifetime_redeemed,
        entry_count=row.entry_count,
        create_time=row.create_time,
        update_time=row.update_time,
    )


def _entry(row: Row[Any]) -> Entry:
    return Entry(
        account_id=row.account_id,
        number=row.entry,
        kind=EntryKind(row.kind),
        points=row.points,
        balance_after=row.balance_after,
        reason=row.reason,
        source_reference=row.source_reference,
        reversed_entry=row.reversed_entry,
        actor=row.actor,
        create_time=row.create_time,
    )
