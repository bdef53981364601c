"""Translation between the usage contract's messages and the usage part's types."""

from collections.abc import Sequence
from operator import attrgetter
from typing import cast

from chassis.names import SUBSCRIPTION, ResourcePattern
from chassis.wellknown import date_to_proto
from crm.customer.v1 import usage_pb2
from services.customer.usage.rules import RADIO_TECHNOLOGIES, IngestTally, LineMonth, ReportedFields

USAGE_PROFILE = ResourcePattern("customers/{customer}/subscriptions/{subscription}/usageProfile")
"""A line's monthly usage."""
_KNOWN_TECHNOLOGIES = frozenset(RADIO_TECHNOLOGIES.values())


# Reads a record's fields in ReportedFields' order in one C call: a batch holds thousands.
_REPORTED_FIELDS = attrgetter(
    "record_id",
    "msisdn",
    "usage_date.year",
    "usage_date.month",
    "usage_date.day",
    "on_net_minutes",
    "off_net_minutes",
    "international_minutes",
    "sms_count",
    "data_mb",
    "roaming",
    "area",
    "radio_technology",
)


def reported_fields_from_proto(records: Sequence[usage_pb2.UsageRecord]) -> list[ReportedFields]:
    """The records of a batch as mediation sent them, unchecked."""
    return cast(list[ReportedFields], list(map(_REPORTED_FIELDS, records)))


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
