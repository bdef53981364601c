"""`crm.loyalty.v1.LoyaltyService` over gRPC: maps messages to the ledger's use cases and back.

Every mutation runs once per request id, in one transaction with the stored answer.
"""

import uuid

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.database import Database
from chassis.idempotency import IdempotentRunner
from chassis.pagination import read_page_request
from crm.loyalty.v1 import loyalty_pb2, loyalty_service_pb2, loyalty_service_pb2_grpc
from services.loyalty import accounts, ledger, mapping, store

Context = grpc.aio.ServicerContext


class LoyaltyServicer(loyalty_service_pb2_grpc.LoyaltyServiceServicer):
    """The points ledger's gRPC face."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._once = IdempotentRunner(database, store.idempotency_keys)

    async def GetAccount(self, request: loyalty_service_pb2.GetAccountRequest, context: Context) -> loyalty_pb2.Account:
        account_id = mapping.parse_account_name(request.name)
        async with self._database.transaction() as session:
            account = await accounts.get_account(session, account_id)
        return mapping.account_to_proto(account)

    async def OpenAccount(
        self, request: loyalty_service_pb2.OpenAccountRequest, context: Context
    ) -> loyalty_pb2.Account:
        account_id = mapping.parse_customer_name(request.customer)

        async def open_account(session: AsyncSession) -> loyalty_pb2.Account:
            return mapping.account_to_proto(await accounts.open_account(session, account_id))

        return await self._once.run(request, loyalty_pb2.Account, open_account)

    async def EarnPoints(
        self, request: loyalty_service_pb2.EarnPointsRequest, context: Context
    ) -> loyalty_pb2.LedgerEntry:
        account_id = mapping.parse_account_name(request.account, "account")
        posting = ledger.earning(request.points, request.reason, request.source_reference)
        return await self._post(request, account_id, posting)

    async def RedeemPoints(
        self, request: loyalty_service_pb2.RedeemPointsRequest, context: Context
    ) -> loyalty_pb2.LedgerEntry:
        account_id = mapping.parse_account_name(request.account, "account")
        posting = ledger.redemption(request.points, request.reason, request.source_reference)
        return await self._post(request, account_id, posting)

    async def GrantGoodwill(
        self, request: loyalty_service_pb2.GrantGoodwillRequest, context: Context
    ) -> loyalty_pb2.LedgerEntry:
        account_id = mapping.parse_account_name(request.account, "account")
        posting = ledger.goodwill(request.points, request.reason)
        return await self._post(request, account_id, posting)

    async def ReverseEntry(
        self, request: loyalty_service_pb2.ReverseEntryRequest, context: Context
    ) -> loyalty_pb2.LedgerEntry:
        account_id, number = mapping.parse_entry_name(request.name)

        async def reverse(session: AsyncSession) -> loyalty_pb2.LedgerEntry:
            entry = await accounts.reverse_entry(session, account_id, number, request.reason, request.request_id)
            return mapping.entry_to_proto(entry)

        return await self._once.run(request, loyalty_pb2.LedgerEntry, reverse)

    async def ListEntries(
        self, request: loyalty_service_pb2.ListEntriesRequest, context: Context
    ) -> loyalty_service_pb2.ListEntriesResponse:
        account_id = mapping.parse_account_name(request.parent, "parent")
        criteria = {"parent": mapping.account_name(account_id)}
        page = read_page_request(request.page_size, request.page_token, criteria)
        async with self._database.transaction() as session:
            result = await accounts.list_entries(session, account_id, page, criteria)
        return loyalty_service_pb2.ListEntriesResponse(
            entries=[mapping.entry_to_proto(e) for e in result.items], next_page_token=result.next_page_token
        )

    async def _post(
        self,
        request: loyalty_service_pb2.EarnPointsRequest
        | loyalty_service_pb2.RedeemPointsRequest
        | loyalty_service_pb2.GrantGoodwillRequest,
        account_id: uuid.UUID,
        posting: ledger.Posting,
    ) -> loyalty_pb2.LedgerEntry:
        async def post(session: AsyncSession) -> loyalty_pb2.LedgerEntry:
            entry = await accounts.post_points(session, account_id, posting, request.request_id)
            return mapping.entry_to_proto(entry)

        return await self._once.run(request, loyalty_pb2.LedgerEntry, post)
