"""The plan changes table: each change with its acceptance, and the accepted ones as the sender's queue."""

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.database import rows_affected
from chassis.pagination import PageRequest
from services.offers.money import Money
from services.offers.plan_changes import Acceptance, AcceptorKind, Origin, PlanChange, State


async def insert_change(session: AsyncSession, change: PlanChange, due: datetime | None) -> None:
    """Writes a new change; an accepted one is due to be sent at `due`."""
    await session.execute(
        text(
            "INSERT INTO plan_changes (id, customer_id, subscription_id, from_plan, to_plan, to_plan_version, "
            "to_plan_price_minor, currency, origin, recommendation_id, state, acceptor_kind, channel, accepted_by, "
            "accept_time, statement, create_time, next_attempt_time, version) VALUES (:id, :customer_id, "
            ":subscription_id, :from_plan, :to_plan, :to_plan_version, :price, :currency, :origin, "
            ":recommendation_id, :state, :acceptor_kind, :channel, :accepted_by, :accept_time, :statement, "
            ":create_time, :due, :version)"
        ),
        {
            "id": change.id,
            "customer_id": change.customer_id,
            "subscription_id": change.subscription_id,
            "from_plan": change.from_plan,
            "to_plan": change.to_plan,
            "to_plan_version": change.to_plan_version,
            "price": change.to_plan_price.minor,
            "currency": change.to_plan_price.currency,
            "origin": change.origin.value,
            "recommendation_id": change.recommendation_id,
            "state": change.state.value,
            "create_time": change.create_time,
            "due": due,
            "version": change.version,
            **_acceptance(change.acceptance),
        },
    )


async def record_decision(session: AsyncSession, change: PlanChange, due: datetime | None) -> None:
    """Writes a proposal's acceptance or decline (the change was locked)."""
    await session.execute(
        text(
            "UPDATE plan_changes SET state = :state, acceptor_kind = :acceptor_kind, channel = :channel, "
            "accepted_by = :accepted_by, accept_time = :accept_time, statement = :statement, "
            "decline_note = :decline_note, next_attempt_time = :due, version = :version WHERE id = :id"
        ),
        {
            "id": change.id,
            "state": change.state.value,
            "decline_note": change.decline_note,
            "due": due,
            "version": change.version,
            **_acceptance(change.acceptance),
        },
    )


async def get_change(session: AsyncSession, change_id: uuid.UUID, *, lock: bool = False) -> PlanChange | None:
    """One change; locked until the transaction ends when `lock`."""
    row = (
        await session.execute(
            text(f"SELECT * FROM plan_changes WHERE id = :id{' FOR UPDATE' if lock else ''}"), {"id": change_id}
        )
    ).first()
    return change_from_row(row) if row else None


async def change_in_flight(session: AsyncSession, subscription_id: uuid.UUID) -> uuid.UUID | None:
    """The line's accepted change not yet applied or refused, if any."""
    value = await session.scalar(
        text("SELECT id FROM plan_changes WHERE subscription_id = :s AND state = 'ACCEPTED'"), {"s": subscription_id}
    )
    return value if isinstance(value, uuid.UUID) else None


async def list_changes(
    session: AsyncSession, customer_id: uuid.UUID, subscription_id: uuid.UUID, page: PageRequest
) -> list[PlanChange]:
    """A page of a line's changes, newest first."""
    after = page.after
    rows = await session.execute(
        text(
            "SELECT * FROM plan_changes WHERE customer_id = :c AND subscription_id = :s "
            "AND (CAST(:after_time AS timestamptz) IS NULL OR (create_time, id) < (CAST(:after_time AS timestamptz), "
            "CAST(:after_id AS uuid))) ORDER BY create_time DESC, id DESC LIMIT :limit"
        ),
        {
            "c": customer_id,
            "s": subscription_id,
            "after_time": datetime.fromisoformat(str(after[0])) if after else None,
            "after_id": uuid.UUID(str(after[1])) if after else None,
            "limit": page.fetch_size,
        },
    )
    return [change_from_row(row) for row in rows]


async def claim_due(session: AsyncSession, now: datetime, lease: timedelta, limit: int) -> list[PlanChange]:
    """Accepted changes due at `now`, each leased to the caller until `now + lease`."""
    rows = await session.execute(
        text(
            "UPDATE plan_changes SET next_attempt_time = :until, attempts = attempts + 1 WHERE id IN ("
            "SELECT id FROM plan_changes WHERE state = 'ACCEPTED' AND next_attempt_time <= :now "
            "ORDER BY next_attempt_time LIMIT :limit FOR UPDATE SKIP LOCKED) RETURNING *"
        ),
        {"now": now, "until": now + lease, "limit": limit},
    )
    return [change_from_row(row) for row in rows]


async def retry_at(session: AsyncSession, change_id: uuid.UUID, when: datetime) -> None:
    """Sends an accepted change again at `when`."""
    await session.execute(
        text("UPDATE plan_changes SET next_attempt_time = :when WHERE id = :id AND state = 'ACCEPTED'"),
        {"id": change_id, "when": when},
    )


async def pin_update_etag(session: AsyncSession, change_id: uuid.UUID, etag: str) -> str:
    """The etag the change's tariff update is sent with: `etag`, unless one is pinned already (by a
    sender that read the line first), so that every sender sends the same request."""
    pinned = await session.scalar(
        text(
            "UPDATE plan_changes SET update_etag = CASE WHEN update_etag = '' THEN :etag ELSE update_etag END "
            "WHERE id = :id RETURNING update_etag"
        ),
        {"id": change_id, "etag": etag},
    )
    return str(pinned or etag)


async def forget_update_etag(session: AsyncSession, change_id: uuid.UUID, stale_etag: str) -> None:
    """Lets the next attempt read the line again, as the update sent with `stale_etag` was refused
    (nothing applied); an etag another sender pinned since is kept."""
    await session.execute(
        text("UPDATE plan_changes SET update_etag = '' WHERE id = :id AND update_etag = :stale"),
        {"id": change_id, "stale": stale_etag},
    )


async def settle(
    session: AsyncSession, change_id: uuid.UUID, state: State, now: datetime, reason: str = "", message: str = ""
) -> PlanChange | None:
    """Records the customer service's answer to an accepted change, once; None when settled before."""
    result = await session.execute(
        text(
            "UPDATE plan_changes SET state = :state, refusal_reason = :reason, refusal_message = :message, "
            "settle_time = :now, next_attempt_time = NULL, version = version + 1 "
            "WHERE id = :id AND state = 'ACCEPTED' RETURNING *"
        ),
        {"id": change_id, "state": state.value, "reason": reason, "message": message, "now": now},
    )
    row = result.first()
    return change_from_row(row) if row and rows_affected(result) else None


def change_from_row(row: Row[Any]) -> PlanChange:
    """The change a row holds."""
    acceptance = None
    if row.accepted_by is not None:
        acceptance = Acceptance(
            AcceptorKind(row.acceptor_kind), row.channel, row.accepted_by, row.accept_time, row.statement
        )
    return PlanChange(
        id=row.id,
        customer_id=row.customer_id,
        subscription_id=row.subscription_id,
        from_plan=row.from_plan,
        to_plan=row.to_plan,
        to_plan_version=row.to_plan_version,
        to_plan_price=Money(row.to_plan_price_minor, row.currency),
        origin=Origin(row.origin),
        state=State(row.state),
        create_time=row.create_time,
        recommendation_id=row.recommendation_id,
        acceptance=acceptance,
        decline_note=row.decline_note,
        refusal_reason=row.refusal_reason,
        refusal_message=row.refusal_message,
        settle_time=row.settle_time,
        version=row.version,
        update_etag=row.update_etag,
    )


def _acceptance(acceptance: Acceptance | None) -> dict[str, object]:
    if acceptance is None:
        return {"acceptor_kind": None, "channel": None, "accepted_by": None, "accept_time": None, "statement": ""}
    return {
        "acceptor_kind": acceptance.acceptor_kind.value,
        "channel": acceptance.channel,
        "accepted_by": acceptance.accepted_by,
        "accept_time": acceptance.accept_time,
        "statement": acceptance.statement,
    }
