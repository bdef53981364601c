"""`crm.loyalty.v1.LoyaltyService` over gRPC: maps messages to the ledger's use cases and back.

Every mutation runs once per request id, in one transaction with the stored answer. The time of a
call is read from the service's clock and handed to the use case; earnings, goodwill and redemptions
are written by one database statement each (`points_postings`).
"""

import uuid
from typing import TypeAlias

import grpc
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.clock import Clock
from chassis.database import Database
from chassis.etags import version_from_etag
from chassis.idempotency import IdempotentRunner
from chassis.names import CUSTOMER
from chassis.pagination import read_page_request
from chassis.wellknown import duration_from_proto, timestamp_from_proto, timestamp_to_proto
from crm.loyalty.v1 import loyalty_pb2, loyalty_service_pb2, loyalty_service_pb2_grpc, program_pb2, rewards_pb2
from services.loyalty import (
    accounts,
    kpis,
    ledger,
    mapping,
    points_postings,
    program_versions,
    redemptions,
    rewards,
    scheduled,
    store,
)
from services.loyalty.resource_names import ACCOUNT, BALANCE, ENTRY, PROGRAM, RESERVATION, REWARD, TIER_STATUS

Context: TypeAlias = grpc.aio.ServicerContext[Message, Message]


class LoyaltyServicer(loyalty_service_pb2_grpc.LoyaltyServiceServicer):
    """The points ledger's gRPC face."""

    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock
        self._once = IdempotentRunner(database, store.idempotency_keys)
        self._points = points_postings.PointsPoster(database)

    async def GetAccount(self, request: loyalty_service_pb2.GetAccountRequest, context: Context) -> loyalty_pb2.Account:
        account_id = ACCOUNT.parse_uuid(request.name)
        async with self._database.transaction() as session:
            account = await accounts.get_account(session, account_id)
        return mapping.account_to_proto(account)

    async def OpenAccount(
        self, request: loyalty_service_pb2.OpenAccountRequest, context: Context
    ) -> loyalty_pb2.Account:
        account_id = CUSTOMER.parse_uuid(request.customer, "customer")

        async def open_account(session: AsyncSession) -> loyalty_pb2.Account:
            return mapping.account_to_proto(await accounts.open_account(session, account_id, self._clock.now()))

        return await self._once.run(request, loyalty_pb2.Account, open_account)

    async def EarnPoints(
        self, request: loyalty_service_pb2.EarnPointsRequest, context: Context
    ) -> loyalty_pb2.LedgerEntry:
        account_id = ACCOUNT.parse_uuid(request.account, "account")
        posting = ledger.earning(request.points, request.reason, request.source_reference)
        return await self._post(request, account_id, posting)

    async def RedeemPoints(
        self, request: loyalty_service_pb2.RedeemPointsRequest, context: Context
    ) -> loyalty_pb2.LedgerEntry:
        account_id = ACCOUNT.parse_uuid(request.account, "account")
        posting = ledger.redemption(request.points, request.reason, request.source_reference)
        return await self._post(request, account_id, posting)

    async def GrantGoodwill(
        self, request: loyalty_service_pb2.GrantGoodwillRequest, context: Context
    ) -> loyalty_pb2.LedgerEntry:
        account_id = ACCOUNT.parse_uuid(request.account, "account")
        posting = ledger.goodwill(request.points, request.reason)
        return await self._post(request, account_id, posting)

    async def ReverseEntry(
        self, request: loyalty_service_pb2.ReverseEntryRequest, context: Context
    ) -> loyalty_pb2.LedgerEntry:
        account_id, number = ENTRY.parse_number(request.name)

        async def reverse(session: AsyncSession) -> loyalty_pb2.LedgerEntry:
            entry = await accounts.reverse_entry(
                session, account_id, number, request.reason, request.request_id, self._clock.now()
            )
            return mapping.entry_to_proto(entry)

        return await self._once.run(request, loyalty_pb2.LedgerEntry, reverse)

    async def ListEntries(
        self, request: loyalty_service_pb2.ListEntriesRequest, context: Context
    ) -> loyalty_service_pb2.ListEntriesResponse:
        account_id = ACCOUNT.parse_uuid(request.parent, "parent")
        criteria = {"parent": ACCOUNT.format(account_id)}
        page = read_page_request(request.page_size, request.page_token, criteria)
        async with self._database.transaction() as session:
            result = await accounts.list_entries(session, account_id, page, criteria)
        return loyalty_service_pb2.ListEntriesResponse(
            entries=[mapping.entry_to_proto(e) for e in result.items], next_page_token=result.next_page_token
        )

    async def GetBalance(
        self, request: loyalty_service_pb2.GetBalanceRequest, context: Context
    ) -> loyalty_service_pb2.Balance:
        account_id = BALANCE.parse_uuid(request.name)
        horizon = accounts.expiring_horizon(
            duration_from_proto(request.expiring_within, request.HasField("expiring_within"))
        )
        async with self._database.transaction() as session:
            view = await accounts.balance(session, account_id, horizon, self._clock.now())
        return loyalty_service_pb2.Balance(
            name=request.name,
            available_points=view.available,
            reserved_points=view.reserved,
            expiring=[
                loyalty_service_pb2.ExpiringPoints(expire_time=timestamp_to_proto(day), points=points)
                for day, points in view.expiring
            ],
        )

    async def GetTierStatus(
        self, request: loyalty_service_pb2.GetTierStatusRequest, context: Context
    ) -> loyalty_service_pb2.TierStatus:
        account_id = TIER_STATUS.parse_uuid(request.name)
        async with self._database.transaction() as session:
            view = await accounts.tier_status(session, account_id, self._clock.now())
        return loyalty_service_pb2.TierStatus(
            name=request.name,
            tier=view.tier,
            qualifying_points=view.qualifying_points,
            window_start_time=timestamp_to_proto(view.window_start),
            next_tier=view.next_tier,
            points_to_next_tier=view.points_to_next_tier,
            review_time=timestamp_to_proto(view.review_time),
            qualified_tier=view.qualified_tier,
        )

    async def RedeemReward(
        self, request: loyalty_service_pb2.RedeemRewardRequest, context: Context
    ) -> loyalty_pb2.LedgerEntry:
        account_id = ACCOUNT.parse_uuid(request.account, "account")
        reward_id = REWARD.parse_slug(request.reward, "reward")

        async def redeem(session: AsyncSession) -> loyalty_pb2.LedgerEntry:
            entry = await redemptions.redeem_reward(
                session, account_id, reward_id, request.request_id, self._clock.now()
            )
            return mapping.entry_to_proto(entry)

        return await self._once.run(request, loyalty_pb2.LedgerEntry, redeem)

    async def ReserveReward(
        self, request: loyalty_service_pb2.ReserveRewardRequest, context: Context
    ) -> rewards_pb2.Reservation:
        account_id = ACCOUNT.parse_uuid(request.account, "account")
        reward_id = REWARD.parse_slug(request.reward, "reward")
        partner = rewards.check_partner(request.partner)
        hold = rewards.hold_duration(duration_from_proto(request.hold_duration, request.HasField("hold_duration")))

        async def reserve(session: AsyncSession) -> rewards_pb2.Reservation:
            reservation = await redemptions.reserve_reward(
                session, account_id, reward_id, partner, hold, request.request_id, self._clock.now()
            )
            return mapping.reservation_to_proto(reservation)

        return await self._once.run(request, rewards_pb2.Reservation, reserve)

    async def CaptureReservation(
        self, request: loyalty_service_pb2.CaptureReservationRequest, context: Context
    ) -> rewards_pb2.Reservation:
        account_id, reservation_id = RESERVATION.parse_uuids(request.name)

        async def capture(session: AsyncSession) -> rewards_pb2.Reservation:
            reservation = await redemptions.capture(
                session, account_id, reservation_id, request.request_id, self._clock.now()
            )
            return mapping.reservation_to_proto(reservation)

        return await self._once.run(request, rewards_pb2.Reservation, capture)

    async def ReleaseReservation(
        self, request: loyalty_service_pb2.ReleaseReservationRequest, context: Context
    ) -> rewards_pb2.Reservation:
        account_id, reservation_id = RESERVATION.parse_uuids(request.name)
        reason = rewards.release_reason(request.reason)

        async def release(session: AsyncSession) -> rewards_pb2.Reservation:
            reservation = await redemptions.release(
                session, account_id, reservation_id, reason, request.request_id, self._clock.now()
            )
            return mapping.reservation_to_proto(reservation)

        return await self._once.run(request, rewards_pb2.Reservation, release)

    async def GetReservation(
        self, request: loyalty_service_pb2.GetReservationRequest, context: Context
    ) -> rewards_pb2.Reservation:
        account_id, reservation_id = RESERVATION.parse_uuids(request.name)
        async with self._database.transaction() as session:
            reservation = await redemptions.get_reservation(session, account_id, reservation_id)
        return mapping.reservation_to_proto(reservation)

    async def GetProgram(self, request: loyalty_service_pb2.GetProgramRequest, context: Context) -> program_pb2.Program:
        PROGRAM.parse(request.name)  # the one program has one name: anything else is INVALID_ARGUMENT
        async with self._database.transaction() as session:
            program = await program_versions.current_program(session)
        return mapping.program_to_proto(program)

    async def UpdateProgram(
        self, request: loyalty_service_pb2.UpdateProgramRequest, context: Context
    ) -> program_pb2.Program:
        program = mapping.program_from_proto(request.program)
        expected_version = version_from_etag(request.program.etag, "program.etag")

        async def update(session: AsyncSession) -> program_pb2.Program:
            updated = await program_versions.update_program(session, program, expected_version, self._clock.now())
            return mapping.program_to_proto(updated)

        return await self._once.run(request, program_pb2.Program, update)

    async def CreateReward(
        self, request: loyalty_service_pb2.CreateRewardRequest, context: Context
    ) -> rewards_pb2.Reward:
        reward = mapping.reward_from_proto(request.reward, request.reward_id)

        async def create(session: AsyncSession) -> rewards_pb2.Reward:
            return mapping.reward_to_proto(await redemptions.create_reward(session, reward, self._clock.now()))

        return await self._once.run(request, rewards_pb2.Reward, create)

    async def GetReward(self, request: loyalty_service_pb2.GetRewardRequest, context: Context) -> rewards_pb2.Reward:
        reward_id = REWARD.parse_slug(request.name)
        async with self._database.transaction() as session:
            reward = await redemptions.get_reward(session, reward_id)
        return mapping.reward_to_proto(reward)

    async def ListRewards(
        self, request: loyalty_service_pb2.ListRewardsRequest, context: Context
    ) -> loyalty_service_pb2.ListRewardsResponse:
        account_id = None
        if request.eligible_account:
            account_id = ACCOUNT.parse_uuid(request.eligible_account, "eligible_account")
        criteria = {"eligible_account": request.eligible_account}
        page = read_page_request(request.page_size, request.page_token, criteria)
        async with self._database.transaction() as session:
            result = await redemptions.list_rewards(session, page, criteria, account_id, self._clock.now())
        return loyalty_service_pb2.ListRewardsResponse(
            rewards=[mapping.reward_to_proto(r) for r in result.items], next_page_token=result.next_page_token
        )

    async def RestockReward(
        self, request: loyalty_service_pb2.RestockRewardRequest, context: Context
    ) -> rewards_pb2.Reward:
        reward_id = REWARD.parse_slug(request.reward, "reward")
        partner = rewards.check_partner(request.partner)

        async def restock(session: AsyncSession) -> rewards_pb2.Reward:
            return mapping.reward_to_proto(await redemptions.restock(session, reward_id, partner, request.quantity))

        return await self._once.run(request, rewards_pb2.Reward, restock)

    async def GetProgramKpis(
        self, request: loyalty_service_pb2.GetProgramKpisRequest, context: Context
    ) -> loyalty_service_pb2.ProgramKpis:
        start, end = kpis.reporting_period(
            timestamp_from_proto(request.start_time) if request.HasField("start_time") else None,
            timestamp_from_proto(request.end_time) if request.HasField("end_time") else None,
            self._clock.now(),
        )
        async with self._database.transaction() as session:
            figures = await kpis.program_kpis(session, start, end)
        return loyalty_service_pb2.ProgramKpis(
            start_time=timestamp_to_proto(figures.start),
            end_time=timestamp_to_proto(figures.end),
            outstanding_points=figures.outstanding_points,
            liability=mapping.money_to_proto(figures.liability),
            earned_points=figures.earned,
            redeemed_points=figures.redeemed,
            expired_points=figures.expired,
            redemption_rate=figures.redemption_rate,
            members_per_tier=[
                loyalty_service_pb2.TierMembers(tier=tier, accounts=count) for tier, count in figures.members_per_tier
            ],
            redeeming_accounts=figures.redeeming_accounts,
            active_accounts=figures.active_accounts,
        )

    async def RunScheduledWork(
        self, request: loyalty_service_pb2.RunScheduledWorkRequest, context: Context
    ) -> loyalty_service_pb2.RunScheduledWorkResponse:
        done = await scheduled.run_scheduled_work(self._database, self._clock)
        return loyalty_service_pb2.RunScheduledWorkResponse(
            expired_points=done.expired_points,
            accounts_with_expired_points=done.accounts_with_expired_points,
            expired_reservations=done.expired_reservations,
            tiers_reviewed=done.tiers_reviewed,
            tiers_lowered=done.tiers_lowered,
            anniversary_credits=done.anniversary_credits,
        )

    async def _post(
        self,
        request: loyalty_service_pb2.EarnPointsRequest
        | loyalty_service_pb2.RedeemPointsRequest
        | loyalty_service_pb2.GrantGoodwillRequest,
        account_id: uuid.UUID,
        posting: ledger.Posting,
    ) -> loyalty_pb2.LedgerEntry:
        return await self._points.post(request, account_id, posting, self._clock.now())
