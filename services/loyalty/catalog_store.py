"""The program's versions, the rewards catalog with partner stock, and reservations, in the loyalty database.

Program versions and rewards are stored as their protobuf definitions (the contract is their
schema); stock and reservations are rows that the database keeps from going below zero.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.database import rows_affected
from services.loyalty.rewards import PartnerStock, Reservation, ReservationState

PROGRAM_LOCK = 7_405_001
"""Advisory lock key that serialises program changes."""


async def latest_program_version(session: AsyncSession) -> int | None:
    """The newest program version's number; None before the first change."""
    version = await session.scalar(text("SELECT max(version) FROM program_versions"))
    return None if version is None else int(version)


async def get_program_version(session: AsyncSession, version: int) -> tuple[bytes, datetime]:
    """A stored program version's definition and when it was made."""
    row = (
        await session.execute(
            text("SELECT definition, create_time FROM program_versions WHERE version = :version"),
            {"version": version},
        )
    ).one()
    return bytes(row.definition), row.create_time


async def lock_program(session: AsyncSession) -> None:
    """Holds program changes off until the transaction ends."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PROGRAM_LOCK})


async def insert_program(session: AsyncSession, version: int, definition: bytes, *, now: datetime, actor: str) -> None:
    """Stores a new program version."""
    await session.execute(
        text(
            "INSERT INTO program_versions (version, definition, create_time, creator) "
            "VALUES (:version, :definition, :now, :actor)"
        ),
        {"version": version, "definition": definition, "now": now, "actor": actor},
    )


@dataclass(frozen=True)
class StoredReward:
    """A reward as the catalog keeps it: its definition (a `Reward` message) and creation time."""

    id: str
    definition: bytes
    create_time: datetime


async def insert_reward(session: AsyncSession, reward_id: str, definition: bytes, *, now: datetime, actor: str) -> bool:
    """Adds a reward; False when the id is taken."""
    result = await session.execute(
        text(
            "INSERT INTO rewards (id, definition, create_time, creator) VALUES (:id, :definition, :now, :actor) "
            "ON CONFLICT (id) DO NOTHING"
        ),
        {"id": reward_id, "definition": definition, "now": now, "actor": actor},
    )
    return rows_affected(result) > 0


async def get_reward(session: AsyncSession, reward_id: str) -> StoredReward | None:
    """A reward's definition and creation time."""
    row = (
        await session.execute(text("SELECT id, definition, create_time FROM rewards WHERE id = :id"), {"id": reward_id})
    ).first()
    return _stored_reward(row) if row else None


async def list_rewards(session: AsyncSession, after_id: str, limit: int) -> list[StoredReward]:
    """At most `limit` rewards by id, after `after_id`."""
    rows = await session.execute(
        text("SELECT id, definition, create_time FROM rewards WHERE id > :after ORDER BY id LIMIT :limit"),
        {"after": after_id, "limit": limit},
    )
    return [_stored_reward(row) for row in rows]


async def stock_of(session: AsyncSession, reward_ids: list[str]) -> dict[str, list[PartnerStock]]:
    """Partner stock of each reward, by partner."""
    rows = await session.execute(
        text(
            "SELECT reward, partner, available, reserved FROM reward_stock WHERE reward = ANY(:ids) "
            "ORDER BY reward, partner"
        ),
        {"ids": reward_ids},
    )
    stock: dict[str, list[PartnerStock]] = {}
    for row in rows:
        stock.setdefault(row.reward, []).append(PartnerStock(row.partner, row.available, row.reserved))
    return stock


async def restock(session: AsyncSession, reward_id: str, partner: str, quantity: int) -> None:
    """Adds pieces to a partner's shelf."""
    await session.execute(
        text(
            "INSERT INTO reward_stock (reward, partner, available, reserved) VALUES (:r, :p, :q, 0) "
            "ON CONFLICT (reward, partner) DO UPDATE SET available = reward_stock.available + EXCLUDED.available"
        ),
        {"r": reward_id, "p": partner, "q": quantity},
    )


async def hold_piece(session: AsyncSession, reward_id: str, partner: str) -> bool:
    """Moves one piece from the shelf to reserved; False when the partner has none."""
    result = await session.execute(
        text(
            "UPDATE reward_stock SET available = available - 1, reserved = reserved + 1 "
            "WHERE reward = :r AND partner = :p AND available > 0"
        ),
        {"r": reward_id, "p": partner},
    )
    return rows_affected(result) > 0


async def settle_piece(session: AsyncSession, reward_id: str, partner: str, *, handed_over: bool) -> None:
    """Ends a piece's hold: handed over (it leaves the stock) or back on the shelf."""
    await session.execute(
        text(
            "UPDATE reward_stock SET reserved = reserved - 1, available = available + :back "
            "WHERE reward = :r AND partner = :p"
        ),
        {"r": reward_id, "p": partner, "back": 0 if handed_over else 1},
    )


async def insert_reservation(session: AsyncSession, reservation: Reservation) -> None:
    """Records a new, held reservation."""
    await session.execute(
        text(
            "INSERT INTO reservations (account_id, id, reward, partner, points, state, expire_time, create_time, "
            "reserve_entry) VALUES (:a, :id, :reward, :partner, :points, 'HELD', :expire, :now, :entry)"
        ),
        {
            "a": reservation.account_id,
            "id": reservation.id,
            "reward": reservation.reward,
            "partner": reservation.partner,
            "points": reservation.points,
            "expire": reservation.expire_time,
            "now": reservation.create_time,
            "entry": reservation.reserve_entry,
        },
    )


async def get_reservation(
    session: AsyncSession, account_id: uuid.UUID, reservation_id: uuid.UUID, *, lock: bool = False
) -> Reservation | None:
    """A reservation; locked until the transaction ends when `lock`."""
    row = (
        await session.execute(
            text("SELECT * FROM reservations WHERE account_id = :a AND id = :id" + (" FOR UPDATE" if lock else "")),
            {"a": account_id, "id": reservation_id},
        )
    ).first()
    return _reservation(row) if row else None


async def settle_reservation(
    session: AsyncSession, reservation: Reservation, state: ReservationState, *, entry: int, now: datetime
) -> Reservation:
    """Marks a held reservation captured, released or expired by `entry`."""
    row = (
        await session.execute(
            text(
                "UPDATE reservations SET state = :state, settle_entry = :entry, settle_time = :now "
                "WHERE account_id = :a AND id = :id AND state = 'HELD' RETURNING *"
            ),
            {"a": reservation.account_id, "id": reservation.id, "state": state.value, "entry": entry, "now": now},
        )
    ).first()
    if row is None:
        raise AssertionError("a reservation settled while its lock was held")
    return _reservation(row)


async def lapsed_reservations(session: AsyncSession, now: datetime, limit: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Held reservations past their lapse time, as (account, reservation)."""
    rows = await session.execute(
        text(
            "SELECT account_id, id FROM reservations WHERE state = 'HELD' AND expire_time <= :now "
            "ORDER BY expire_time LIMIT :limit"
        ),
        {"now": now, "limit": limit},
    )
    return [(row.account_id, row.id) for row in rows]


def _stored_reward(row: Row[Any]) -> StoredReward:
    return StoredReward(row.id, bytes(row.definition), row.create_time)


def _reservation(row: Row[Any]) -> Reservation:
    return Reservation(
        account_id=row.account_id,
        id=row.id,
        reward=row.reward,
        partner=row.partner,
        points=row.points,
        state=ReservationState(row.state),
        expire_time=row.expire_time,
        create_time=row.create_time,
        reserve_entry=row.reserve_entry,
        settle_time=row.settle_time,
        settle_entry=row.settle_entry,
    )
