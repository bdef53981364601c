"""Translation between the usage contract's messages and the usage part's types."""

from chassis.names import SUBSCRIPTION, ResourcePattern
from chassis.wellknown import date_to_proto
from crm.customer.v1 import usage_pb2
from services.customer.usage.rules import RADIO_TECHNOLOGIES, IngestTally, LineMonth, ReportedRecord

USAGE_PROFILE = ResourcePattern("customers/{customer}/subscriptions/{subscription}/usageProfile")
"""A line's monthly usage."""
_KNOWN_TECHNOLOGIES = frozenset(RADIO_TECHNOLOGIES.values())


def reported_record_from_proto(record: usage_pb2.UsageRecord) -> ReportedRecord:
    """A record as mediation sent it, unchecked."""
    day = record.usage_date
    return ReportedRecord(
        record.record_id,
        record.msisdn,
        day.year,
        day.month,
        day.day,
        record.on_net_minutes,
        record.off_net_minutes,
        record.international_minutes,
        record.sms_count,
        record.data_mb,
        record.roaming,
        record.area,
        record.radio_technology,
    )


def ingest_response(tally: IngestTally) -> usage_pb2.IngestUsageResponse:
    """The answer to a whole stream of batches."""
    return usage_pb2.IngestUsageResponse(
        accepted=tally.accepted,
        duplicates=tally.duplicates,
        rejected=tally.rejected,
        rejections=[
            usage_pb2.UsageRejection(record_id=r.record_id, reason=r.reason, message=r.message)
            for r in tally.rejections
        ],
    )


def monthly_usage_to_proto(month: LineMonth) -> usage_pb2.MonthlyUsage:
    """The MonthlyUsage message of a stored line-month."""
    return usage_pb2.MonthlyUsage(
        subscription=SUBSCRIPTION.format(month.customer_id, month.subscription_id),
        month=date_to_proto(month.month),
        on_net_minutes=month.on_net_minutes,
        off_net_minutes=month.off_net_minutes,
        international_minutes=month.international_minutes,
        sms_count=month.sms_count,
        data_mb=month.data_mb,
        active_days=month.active_days,
        roaming_days=month.roaming_days,
        record_count=month.record_count,
        areas=[
            usage_pb2.AreaUsage(
                area=area, radio_technology=_technology_label(technology), record_count=count, data_mb=data
            )
            for area, technology, count, data in month.areas
        ],
    )


def _technology_label(technology: str) -> str:
    return f"RADIO_TECHNOLOGY_{technology if technology in _KNOWN_TECHNOLOGIES else 'UNSPECIFIED'}"
