"""Action rules, segments and consent for the next-best-action integration tests."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from google.protobuf import any_pb2, timestamp_pb2

from chassis.database import Database
from crm.common.v1 import common_pb2
from crm.common.v1 import events_pb2 as common_events_pb2
from crm.customer.v1 import customer_pb2, customer_service_pb2, segments_pb2
from crm.customer.v1 import events_pb2 as customer_events_pb2
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from crm.offers.v1 import next_best_action_pb2 as nba_pb2
from crm.offers.v1 import next_best_action_service_pb2 as nba_service_pb2
from crm.offers.v1.next_best_action_service_pb2_grpc import NextBestActionServiceStub
from services.offers import customer_events
from tests.support import request_id


async def create_rule(
    next_best_actions: NextBestActionServiceStub,
    region: str,
    kind: nba_pb2.ActionKind,
    *,
    offering: str = "",
    value: float = 100.0,
    required_segments: Sequence[str] = (),
    loyalty_tiers: Sequence[str] = (),
) -> str:
    """A rule for lines at home in `region` only (tests sharing the database never meet); its name."""
    rule = nba_pb2.ActionRule(
        display_name=f"{nba_pb2.ActionKind.Name(kind)} {uuid.uuid4().hex[:6]}",
        kind=kind,
        offering=offering,
        message="Sizga maxsus taklif" if offering else "Tarifingiz yopiladi: yangi tarif tanlang",
        regions=[region],
        required_segments=list(required_segments),
        loyalty_tiers=list(loyalty_tiers),
        value=value,
        business_weight=1.0,
        active=True,
    )
    created = await next_best_actions.CreateActionRule(
        nba_service_pb2.CreateActionRuleRequest(
            action_rule=rule, action_rule_id=f"r-{uuid.uuid4().hex[:12]}", request_id=request_id()
        ),
        timeout=5,
    )
    return created.name


async def record_marketing_consent(
    customers: CustomerServiceStub, customer: str, decision: customer_pb2.ConsentDecision
) -> None:
    """Records the customer's marketing decision in the customer service."""
    await customers.RecordConsent(
        customer_service_pb2.RecordConsentRequest(
            parent=customer,
            purpose=customer_pb2.CONSENT_PURPOSE_MARKETING,
            decision=decision,
            channel=common_pb2.CHANNEL_APP,
            request_id=request_id(),
        ),
        timeout=5,
    )


async def announce_segments(
    database: Database, customer: str, entered: Sequence[str], left: Sequence[str] = ()
) -> None:
    """Applies a SegmentsChanged event of the customer feed to the offers database, as the consumer would."""
    change = customer_events_pb2.SegmentsChanged(
        customer=customer,
        entered=[segments_pb2.SegmentMembership(segment=f"segments/{segment}") for segment in entered],
        left=[f"segments/{segment}" for segment in left],
        churn_risk_score=0.8,
    )
    payload = any_pb2.Any()
    payload.Pack(change)
    event = common_events_pb2.Event(
        event_id=str(uuid.uuid4()), event_type=customer_events_pb2.SegmentsChanged.DESCRIPTOR.full_name, payload=payload
    )
    async with database.transaction() as session:
        await customer_events.apply_customer_event(session, event, datetime.now(UTC))


async def announce_churn(database: Database, customer: str, when: datetime) -> None:
    """Applies a CustomerUpdated event of the customer feed, stamped `when`, that says the customer churned."""
    updated = customer_events_pb2.CustomerUpdated(
        customer=customer_pb2.Customer(name=customer, status=customer_pb2.CUSTOMER_STATUS_CHURNED)
    )
    payload = any_pb2.Any()
    payload.Pack(updated)
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    event = common_events_pb2.Event(
        event_id=str(uuid.uuid4()),
        event_type=customer_events_pb2.CustomerUpdated.DESCRIPTOR.full_name,
        event_time=stamp,
        payload=payload,
    )
    async with database.transaction() as session:
        await customer_events.apply_customer_event(session, event, when)


async def best_actions(
    next_best_actions: NextBestActionServiceStub, customer: str, channel: common_pb2.Channel = common_pb2.CHANNEL_WEB
) -> nba_pb2.NextBestActions:
    """The customer's next-best actions on `channel` (the web: no quiet hours by default)."""
    return await next_best_actions.GetNextBestActions(
        nba_service_pb2.GetNextBestActionsRequest(customer=customer, channel=channel), timeout=10
    )
