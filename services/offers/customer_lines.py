"""The customer service as the offers service asks it over gRPC, each call with a deadline and never
inside a database transaction: a line's plan and region, its usage profile, and its tariff change."""

from dataclasses import dataclass

import grpc

from chassis.caller import Caller
from chassis.channels import open_channel
from chassis.errors import DomainError, Unavailable
from chassis.status import from_rpc_error
from chassis.wellknown import date_from_proto
from crm.common.v1 import common_pb2
from crm.customer.v1 import customer_pb2, customer_service_pb2, usage_pb2
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from crm.customer.v1.usage_pb2_grpc import UsageServiceStub
from services.offers.catalog import Technology
from services.offers.costing import AreaUse, MonthUsage
from services.offers.mapping import TECHNOLOGIES

CUSTOMER_SERVICE = "crm.customer.v1.CustomerService"
USAGE_SERVICE = "crm.customer.v1.UsageService"
SERVICE_CALLER = Caller(subject="offers-service", kind="service")
"""Who the offers service is when it calls another service."""
# Answers the customer service gives when the line's state decided: asking again cannot help.
DECIDED = frozenset(
    {
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.ABORTED,
    }
)


@dataclass(frozen=True)
class Line:
    """What the offers service reads of a customer's line."""

    name: str
    tariff_plan: str
    home_region: str
    active: bool
    etag: str


@dataclass(frozen=True)
class MarketingConsent:
    """The customer's marketing consent as the customer service holds it."""

    permitted: bool
    words: str
    """How it stands, in words: "was granted through APP on 2025-03-01"."""


class CustomerLines:
    """Lines and their usage, read from the customer service, and their tariff changed there."""

    def __init__(self, target: str, *, deadline_seconds: float) -> None:
        self._channel = open_channel(target, service_names=[CUSTOMER_SERVICE, USAGE_SERVICE])
        self._customers = CustomerServiceStub(self._channel)
        self._usage = UsageServiceStub(self._channel)
        self._deadline = deadline_seconds

    async def line(self, name: str) -> Line:
        """The line `customers/{c}/subscriptions/{s}`; NOT_FOUND as the customer service says it."""
        try:
            line = await self._customers.GetSubscription(
                customer_service_pb2.GetSubscriptionRequest(name=name),
                timeout=self._deadline,
                metadata=SERVICE_CALLER.to_metadata(),
            )
        except grpc.aio.AioRpcError as error:
            raise _answer(error, f"could not read {name}") from None
        return _line(line)

    async def usage(self, name: str, months: int) -> list[MonthUsage]:
        """The line's months of usage, newest first (months without use are left out)."""
        try:
            profile = await self._usage.GetUsageProfile(
                usage_pb2.GetUsageProfileRequest(name=f"{name}/usageProfile", months=months),
                timeout=self._deadline,
                metadata=SERVICE_CALLER.to_metadata(),
            )
        except grpc.aio.AioRpcError as error:
            raise _answer(error, f"could not read the usage of {name}") from None
        return [month_usage(month) for month in profile.months]

    async def marketing_consent(self, customer: str) -> "MarketingConsent":
        """Whether the customer's marketing consent permits marketing now, from their consent state;
        an unanswered or failed read is no permission (marketing waits, service messages do not)."""
        try:
            state = await self._customers.GetConsentState(
                customer_service_pb2.GetConsentStateRequest(name=f"{customer}/consentState"),
                timeout=self._deadline,
                metadata=SERVICE_CALLER.to_metadata(),
            )
        except grpc.aio.AioRpcError as error:
            return MarketingConsent(False, f"could not be read from the customer service ({error.code().name})")
        for purpose in state.purposes:
            if purpose.purpose == customer_pb2.CONSENT_PURPOSE_MARKETING:
                return _marketing(purpose)
        return MarketingConsent(False, "was never asked for")

    async def change_tariff(self, name: str, plan: str, *, etag: str, request_id: str) -> Line:
        """Puts the line `name` on `plan`, provided it is still at `etag`; the same request sent again
        with the same `request_id` returns the first answer without changing the line again. The
        answer of the customer service is raised as its domain error."""
        request = customer_service_pb2.UpdateSubscriptionRequest(
            subscription=customer_pb2.Subscription(name=name, tariff_plan_id=plan, etag=etag), request_id=request_id
        )
        request.update_mask.paths.append("tariff_plan_id")
        try:
            updated = await self._customers.UpdateSubscription(
                request, timeout=self._deadline, metadata=SERVICE_CALLER.to_metadata()
            )
        except grpc.aio.AioRpcError as error:
            raise _answer(error, f"could not change the tariff of {name}") from None
        return _line(updated)

    def start(self) -> None:
        """Nothing to start: the channel connects on the first call."""

    async def stop(self) -> None:
        """Closes the channel."""
        await self._channel.close()


def _answer(error: grpc.aio.AioRpcError, doing: str) -> DomainError:
    if error.code() in DECIDED:
        return from_rpc_error(error)
    return Unavailable("CUSTOMER_SERVICE_UNAVAILABLE", f"the customer service {doing} ({error.code().name}); retry", {})


def _marketing(purpose: customer_pb2.PurposeConsent) -> MarketingConsent:
    if purpose.decision == customer_pb2.CONSENT_DECISION_UNSPECIFIED:
        return MarketingConsent(False, "was never asked for")
    decision = customer_pb2.ConsentDecision.Name(purpose.decision).removeprefix("CONSENT_DECISION_").lower()
    record = purpose.latest_record
    channel = common_pb2.Channel.Name(record.channel).removeprefix("CHANNEL_")
    when = record.record_time.ToDatetime().date().isoformat() if record.HasField("record_time") else "an unknown day"
    return MarketingConsent(purpose.permitted, f"was {decision} through {channel} on {when}")


def _line(line: customer_pb2.Subscription) -> Line:
    return Line(
        name=line.name,
        tariff_plan=line.tariff_plan_id,
        home_region=line.home_region,
        active=line.status == customer_pb2.SUBSCRIPTION_STATUS_ACTIVE,
        etag=line.etag,
    )


def month_usage(month: usage_pb2.MonthlyUsage) -> MonthUsage:
    """A month of a line's usage as the customer service reports it."""
    first_day = date_from_proto(month.month, "month")
    if first_day is None:
        raise Unavailable("CUSTOMER_SERVICE_ANSWER", "the customer service sent a month without a date", {})
    return MonthUsage(
        month=first_day,
        on_net_minutes=month.on_net_minutes,
        off_net_minutes=month.off_net_minutes,
        sms=month.sms_count,
        data_mb=month.data_mb,
        active_days=month.active_days,
        areas=tuple(
            AreaUse(area.area, TECHNOLOGIES.get(area.radio_technology, Technology.UNSPECIFIED), area.record_count)
            for area in month.areas
        ),
    )
