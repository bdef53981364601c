"""`crm.customer.v1.UsageService`: usage records in from network mediation, usage profiles out."""

from collections.abc import AsyncIterator

import grpc
from google.protobuf.message import Message

from chassis.database import Database
from crm.customer.v1 import usage_pb2, usage_pb2_grpc
from services.customer.usage.mapping import (
    USAGE_PROFILE,
    ingest_response,
    monthly_usage_to_proto,
    reported_fields_from_proto,
)
from services.customer.usage.rules import IngestTally
from services.customer.usage.use_cases import UsageProfiles

# Handlers neither read nor write through the context: requests and answers are their arguments.
Context = grpc.aio.ServicerContext[Message, Message]


class UsageServicer(usage_pb2_grpc.UsageServiceServicer):
    """The usage part's gRPC face."""

    def __init__(self, database: Database, profiles: UsageProfiles) -> None:
        self._database = database
        self._profiles = profiles

    async def IngestUsage(
        self, request_iterator: AsyncIterator[usage_pb2.IngestUsageRequest], context: Context
    ) -> usage_pb2.IngestUsageResponse:
        tally = IngestTally()
        async for batch in request_iterator:
            records = reported_fields_from_proto(batch.records)
            # One batch, one transaction: a crash counts all of its records or none.
            async with self._database.transaction() as session:
                await self._profiles.ingest_batch(session, records, tally)
        return ingest_response(tally)

    async def GetUsageProfile(
        self, request: usage_pb2.GetUsageProfileRequest, context: Context
    ) -> usage_pb2.UsageProfile:
        customer_id, subscription_id = USAGE_PROFILE.parse_uuids(request.name)
        async with self._database.transaction() as session:
            months = await self._profiles.line_profile(session, customer_id, subscription_id, request.months)
        return usage_pb2.UsageProfile(name=request.name, months=[monthly_usage_to_proto(m) for m in months])
