"""`crm.customer.v1.UsageService`: usage records in from network mediation, usage profiles out."""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import grpc

from chassis.database import Database
from chassis.errors import invalid_field, not_found
from crm.customer.v1 import usage_pb2, usage_pb2_grpc
from services.customer import store, usage, usage_store
from services.customer.mapping import date_to_proto, parse_subscription_name, subscription_name

Context = grpc.aio.ServicerContext
_TECHNOLOGY_VALUES = {name: number for number, name in usage.RADIO_TECHNOLOGIES.items()}


@dataclass
class IngestTally:
    """What happened to the records of one stream so far."""

    accepted: int = 0
    duplicates: int = 0
    rejections: list[usage.Rejection] = field(default_factory=list)
    rejected: int = 0

    def reject(self, rejection: usage.Rejection) -> None:
        """Counts a refused record, keeping the first reasons."""
        self.rejected += 1
        if len(self.rejections) < usage.MAX_REPORTED_REJECTIONS:
            self.rejections.append(rejection)


class UsageServicer(usage_pb2_grpc.UsageServiceServicer):
    """Counts usage records once each and serves the monthly profiles they build."""

    def __init__(self, database: Database, *, default_region: str) -> None:
        self._database = database
        self._default_region = default_region

    async def IngestUsage(
        self, request_iterator: AsyncIterator[usage_pb2.IngestUsageRequest], context: Context
    ) -> usage_pb2.IngestUsageResponse:
        tally = IngestTally()
        async for batch in request_iterator:
            if len(batch.records) > usage.MAX_BATCH_RECORDS:
                raise invalid_field("records", f"a batch holds at most {usage.MAX_BATCH_RECORDS} records")
            await self._ingest_batch(batch, tally)
        return usage_pb2.IngestUsageResponse(
            accepted=tally.accepted,
            duplicates=tally.duplicates,
            rejected=tally.rejected,
            rejections=[
                usage_pb2.UsageRejection(record_id=r.record_id, reason=r.reason, message=r.message)
                for r in tally.rejections
            ],
        )

    async def _ingest_batch(self, batch: usage_pb2.IngestUsageRequest, tally: IngestTally) -> None:
        """One batch, one transaction: a crash counts all of its records or none."""
        today = datetime.now(UTC).date()
        checked: dict[str, usage.CheckedRecord] = {}
        in_batch_repeats = 0
        for record in batch.records:
            day = record.usage_date
            outcome = usage.check_record(
                record_id=record.record_id,
                msisdn=record.msisdn,
                year=day.year,
                month=day.month,
                day=day.day,
                on_net_minutes=record.on_net_minutes,
                off_net_minutes=record.off_net_minutes,
                international_minutes=record.international_minutes,
                sms_count=record.sms_count,
                data_mb=record.data_mb,
                roaming=record.roaming,
                area=record.area,
                radio_technology=record.radio_technology,
                default_region=self._default_region,
                today=today,
            )
            if isinstance(outcome, usage.Rejection):
                tally.reject(outcome)
            elif outcome.record_id in checked:
                in_batch_repeats += 1
            else:
                checked[outcome.record_id] = outcome
        async with self._database.transaction() as session:
            stored, unknown = await usage_store.store_records(session, list(checked.values()))
        unmatched = [r for r in checked.values() if r.msisdn in unknown]
        for record in unmatched:
            tally.reject(usage.Rejection(record.record_id, "UNKNOWN_MSISDN", f"no line in service has {record.msisdn}"))
        tally.accepted += stored
        tally.duplicates += len(checked) - len(unmatched) - stored + in_batch_repeats

    async def GetUsageProfile(
        self, request: usage_pb2.GetUsageProfileRequest, context: Context
    ) -> usage_pb2.UsageProfile:
        line_name, _, leaf = request.name.rpartition("/")
        if leaf != "usageProfile":
            raise invalid_field("name", "must look like customers/{customer}/subscriptions/{subscription}/usageProfile")
        customer_id, subscription_id = parse_subscription_name(line_name, "name")
        months = usage.profile_months(request.months)
        if months is None:
            raise invalid_field("months", f"must be between 1 and {usage.MAX_PROFILE_MONTHS} (0 means 6)")
        since = usage.first_month(datetime.now(UTC).date(), months)
        async with self._database.transaction() as session:
            if await store.get_subscription(session, customer_id, subscription_id) is None:
                raise not_found("subscription", subscription_name(customer_id, subscription_id))
            rows = await usage_store.months_of_line(session, subscription_id, since)
        return usage_pb2.UsageProfile(name=request.name, months=[monthly_usage_to_proto(row) for row in rows])


def monthly_usage_to_proto(row: usage_store.MonthRow) -> usage_pb2.MonthlyUsage:
    """The MonthlyUsage message of a stored line-month."""
    return usage_pb2.MonthlyUsage(
        subscription=subscription_name(row.customer_id, row.subscription_id),
        month=date_to_proto(row.month),
        on_net_minutes=row.on_net_minutes,
        off_net_minutes=row.off_net_minutes,
        international_minutes=row.international_minutes,
        sms_count=row.sms_count,
        data_mb=row.data_mb,
        active_days=row.active_days,
        roaming_days=row.roaming_days,
        record_count=row.record_count,
        areas=[
            usage_pb2.AreaUsage(
                area=area, radio_technology=_TECHNOLOGY_VALUES.get(technology, 0), record_count=count, data_mb=data
            )
            for area, technology, count, data in row.areas
        ],
    )
