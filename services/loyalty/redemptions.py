"""Use cases of the rewards catalog and of spending points on rewards: self-service redemption in
one step, and the partner-shop reservation that is captured, released or lapses.

A reservation's transitions hold the account's lock and then the reservation's, in that order
everywhere, so a capture, a release and the lapse job racing on one reservation queue up and the
first one settles it; the database's unique index on settling entries backs that up.
"""

import uuid
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from chassis.caller import current_caller
from chassis.errors import AlreadyExists, FailedPrecondition, not_found
from chassis.pagination import Page, PageRequest
from crm.loyalty.v1 import events_pb2
from services.loyalty import accounts, catalog_store, ledger, mapping, rewards, store
from services.loyalty.ledger import Account, Entry
from services.loyalty.program_versions import current_program
from services.loyalty.resource_names import RESERVATION, REWARD
from services.loyalty.rewards import Reservation, ReservationState, Reward


async def create_reward(session: AsyncSession, reward: Reward, now: datetime) -> Reward:
    """Adds a reward to the catalog at `now`; ALREADY_EXISTS when its id is taken."""
    program = await current_program(session)
    rewards.check_reward(reward, {tier.id for tier in program.tiers})
    stored = replace(reward, create_time=now, stock=())
    definition = mapping.reward_definition(stored)
    if not await catalog_store.insert_reward(session, reward.id, definition, now=now, actor=current_caller().subject):
        raise AlreadyExists("REWARD_EXISTS", f"{REWARD.format(reward.id)} exists", {"reward": reward.id})
    return stored


async def get_reward(session: AsyncSession, reward_id: str) -> Reward:
    """A reward with its stock; NOT_FOUND when the catalog has none by that id."""
    stored = await catalog_store.get_reward(session, reward_id)
    if stored is None:
        raise not_found("reward", REWARD.format(reward_id))
    stock = await catalog_store.stock_of(session, [reward_id])
    return mapping.reward_from_definition(reward_id, stored.definition, stored.create_time, stock.get(reward_id, []))


async def list_rewards(
    session: AsyncSession,
    page: PageRequest,
    criteria: dict[str, str],
    eligible_account: uuid.UUID | None,
    now: datetime,
) -> Page[Reward]:
    """A page of the catalog by id; only what the account may redeem at `now` when it is given."""
    after = str(page.after[0]) if page.after else ""
    rows = await catalog_store.list_rewards(session, after, page.fetch_size)
    shown = Page.cut(rows, page, lambda row: [row.id], criteria)
    stock = await catalog_store.stock_of(session, [row.id for row in shown.items])
    items = [
        mapping.reward_from_definition(row.id, row.definition, row.create_time, stock.get(row.id, []))
        for row in shown.items
    ]
    if eligible_account is not None:
        account = await accounts.get_account(session, eligible_account)
        profile = await store.customer_profile(session, eligible_account)
        items = [
            reward
            for reward in items
            if rewards.ineligibility(reward, tier=account.tier, segments=profile.segments, now=now) is None
        ]
    # The token follows the catalog, not the filtered items: the next page starts after the last row read.
    return Page(items, shown.next_page_token)


async def restock(session: AsyncSession, reward_id: str, partner: str, quantity: int) -> Reward:
    """Adds pieces of a handset or prize to a partner's shelf."""
    reward = await get_reward(session, reward_id)
    rewards.check_restock(reward, quantity)
    await catalog_store.restock(session, reward_id, partner, quantity)
    return await get_reward(session, reward_id)


async def redeem_reward(
    session: AsyncSession, account_id: uuid.UUID, reward_id: str, request_id: str, now: datetime
) -> Entry:
    """Spends the reward's price in one step, if the customer may redeem it at `now`."""
    reward = await get_reward(session, reward_id)
    rewards.require_self_service(reward)
    account = await accounts.lock(session, account_id)
    await _require_eligible(session, account, reward, now)
    posting = ledger.redemption(reward.points_price, f"reward: {reward.display_name}", REWARD.format(reward.id))
    posted = await accounts.record(session, account, posting, request_id=request_id, now=now)
    return posted.entry


async def reserve_reward(
    session: AsyncSession,
    account_id: uuid.UUID,
    reward_id: str,
    partner: str,
    hold: timedelta,
    request_id: str,
    now: datetime,
) -> Reservation:
    """Holds the reward's price and one of the partner's pieces from `now` until capture, release or
    lapse."""
    _require_own_partner(partner)
    reward = await get_reward(session, reward_id)
    rewards.require_partner_reward(reward)
    account = await accounts.lock(session, account_id)
    await _require_eligible(session, account, reward, now)
    if not await catalog_store.hold_piece(session, reward_id, partner):
        raise FailedPrecondition(
            "OUT_OF_STOCK",
            f"{partner} holds no piece of {reward.display_name}",
            {"reward": reward.id, "partner": partner},
        )
    reservation_id = uuid.uuid4()
    posting = ledger.reservation_hold(
        reward.points_price, reservation_id, f"reserved: {reward.display_name} at {partner}"
    )
    posted = await accounts.record(session, account, posting, request_id=request_id, now=now)
    reservation = Reservation(
        account_id=account_id,
        id=reservation_id,
        reward=reward.id,
        partner=partner,
        points=reward.points_price,
        state=ReservationState.HELD,
        expire_time=now + hold,
        create_time=now,
        reserve_entry=posted.entry.number,
    )
    await catalog_store.insert_reservation(session, reservation)
    await _announce(session, reservation, now)
    return reservation


async def capture(
    session: AsyncSession, account_id: uuid.UUID, reservation_id: uuid.UUID, request_id: str, now: datetime
) -> Reservation:
    """Spends the held points: the prize was handed over (before the hold lapsed)."""
    account, reservation = await _lock_held(session, account_id, reservation_id, capturing=True, now=now)
    posting = ledger.reservation_capture(reservation.points, reservation.id, f"handed over: {reservation.reward}")
    posted = await accounts.record(session, account, posting, request_id=request_id, now=now)
    await catalog_store.settle_piece(session, reservation.reward, reservation.partner, handed_over=True)
    return await _settled(session, reservation, ReservationState.CAPTURED, posted.entry, now)


async def release(
    session: AsyncSession,
    account_id: uuid.UUID,
    reservation_id: uuid.UUID,
    reason: str,
    request_id: str,
    now: datetime,
) -> Reservation:
    """Gives the held points and the piece back."""
    account, reservation = await _lock_held(session, account_id, reservation_id, capturing=False, now=now)
    return await _give_back(session, account, reservation, ReservationState.RELEASED, reason, request_id, now)


async def expire_reservation(
    session: AsyncSession, account_id: uuid.UUID, reservation_id: uuid.UUID, now: datetime
) -> bool:
    """Lapses a held reservation past its time at `now`; False when it was settled meanwhile."""
    account = await store.lock_account(session, account_id)
    reservation = await catalog_store.get_reservation(session, account_id, reservation_id, lock=True)
    if account is None or reservation is None or reservation.state is not ReservationState.HELD:
        return False
    if reservation.expire_time > now:
        return False
    await _give_back(session, account, reservation, ReservationState.EXPIRED, "reservation lapsed uncaptured", "", now)
    return True


async def get_reservation(session: AsyncSession, account_id: uuid.UUID, reservation_id: uuid.UUID) -> Reservation:
    """A reservation; NOT_FOUND when the account has none by that id."""
    reservation = await catalog_store.get_reservation(session, account_id, reservation_id)
    if reservation is None:
        raise not_found("reservation", RESERVATION.format(account_id, reservation_id))
    return reservation


async def _lock_held(
    session: AsyncSession, account_id: uuid.UUID, reservation_id: uuid.UUID, *, capturing: bool, now: datetime
) -> tuple[Account, Reservation]:
    """The account and its reservation, both locked, when the caller's partner may settle it now."""
    account = await accounts.lock(session, account_id)
    reservation = await catalog_store.get_reservation(session, account_id, reservation_id, lock=True)
    if reservation is None:
        raise not_found("reservation", RESERVATION.format(account_id, reservation_id))
    _require_own_partner(reservation.partner)
    rewards.require_held(reservation, capturing=capturing, now=now)
    return account, reservation


async def _give_back(
    session: AsyncSession,
    account: Account,
    reservation: Reservation,
    state: ReservationState,
    reason: str,
    request_id: str,
    now: datetime,
) -> Reservation:
    """Releases the held points into the lots the hold drew on, and the piece onto the shelf."""
    posting = ledger.reservation_release(reservation.points, reservation.id, reason)
    posted = await accounts.record_returned_points(
        session, account, posting, reservation.reserve_entry, request_id=request_id, now=now
    )
    await catalog_store.settle_piece(session, reservation.reward, reservation.partner, handed_over=False)
    return await _settled(session, reservation, state, posted.entry, now)


async def _settled(
    session: AsyncSession, reservation: Reservation, state: ReservationState, entry: Entry, now: datetime
) -> Reservation:
    settled = await catalog_store.settle_reservation(session, reservation, state, entry=entry.number, now=now)
    await _announce(session, settled, now)
    return settled


def _require_own_partner(partner: str) -> None:
    caller = current_caller()
    rewards.require_partner_caller(caller.kind, caller.tenant, partner)


async def _require_eligible(session: AsyncSession, account: Account, reward: Reward, now: datetime) -> None:
    profile = await store.customer_profile(session, account.id)
    rewards.require_eligible(reward, tier=account.tier, segments=profile.segments, now=now)


async def _announce(session: AsyncSession, reservation: Reservation, now: datetime) -> None:
    await accounts.announce(
        session,
        reservation.account_id,
        [events_pb2.ReservationChanged(reservation=mapping.reservation_to_proto(reservation))],
        now,
    )
