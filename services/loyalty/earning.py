"""The customer service's events, applied to loyalty accounts: accounts open when customers are
created, payments and usage earn points by the program's rules, lines and segments keep the facts
that rules look at, erasure closes the account.

Each event runs inside the consumer's transaction that records it as applied (exactly once). A
business refusal (a closed account) means the event has no effect; it must not stop the feed.
Events whose payload was emptied by a later erasure are skipped. Each rule credits one business
fact at most once (a unique index backs this), so a payment announced twice earns once. A rule
looks at the time of the fact (the event's); the entries it writes carry the time they are written.
"""

import uuid
from datetime import datetime
from typing import TypeVar

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.aggregates import AggregateType
from chassis.clock import Clock
from chassis.event_consumer import EventHandler
from chassis.names import CUSTOMER, SUBSCRIPTION
from chassis.outbox import erase_aggregate_payloads
from chassis.wellknown import date_from_proto, timestamp_from_proto
from crm.common.v1 import events_pb2 as common_events_pb2
from crm.customer.v1 import customer_pb2
from crm.customer.v1 import events_pb2 as customer_events_pb2
from crm.loyalty.v1 import events_pb2
from services.loyalty import accounts, ledger, program_rules, store
from services.loyalty.ledger import Account, AccountState
from services.loyalty.mapping import money_from_proto
from services.loyalty.program_rules import CustomerFacts, EarningRule, Program, Trigger
from services.loyalty.program_versions import current_program
from services.loyalty.resource_names import ACCOUNT, CUSTOMER_PAYMENT, customer_id_in

EventMessage = TypeVar("EventMessage", bound=Message)

CONSUMER_NAME = "loyalty"
PRODUCER_NAME = "customer"


def _type(message: type[Message]) -> str:
    return message.DESCRIPTOR.full_name


EVENT_TYPES = tuple(
    _type(message)
    for message in (
        customer_events_pb2.CustomerCreated,
        customer_events_pb2.CustomerUpdated,
        customer_events_pb2.CustomerErased,
        customer_events_pb2.SubscriptionChanged,
        customer_events_pb2.PaymentRecorded,
        customer_events_pb2.MonthlyUsageUpdated,
        customer_events_pb2.SegmentsChanged,
    )
)
"""The customer events the loyalty service reads."""


def customer_event_handler(clock: Clock) -> EventHandler:
    """The consumer's handler: applies each customer event at the time `clock` tells."""

    async def apply(session: AsyncSession, event: common_events_pb2.Event) -> None:
        await apply_customer_event(session, event, clock.now())

    return apply


async def apply_customer_event(session: AsyncSession, event: common_events_pb2.Event, now: datetime) -> None:
    """Applies one customer event to the loyalty accounts at `now`; rules look at the event's time
    (`now` when the event carries none)."""
    if not event.payload.value:
        # The customer was erased after this event: its facts are gone, and so is the account's use for them.
        return
    at = timestamp_from_proto(event.event_time) if event.HasField("event_time") else now
    source_event = uuid.UUID(event.event_id)
    kind = event.event_type
    if kind == _type(customer_events_pb2.CustomerCreated):
        await _customer_seen(session, _unpack(event, customer_events_pb2.CustomerCreated).customer, now)
    elif kind == _type(customer_events_pb2.CustomerUpdated):
        await _customer_seen(session, _unpack(event, customer_events_pb2.CustomerUpdated).customer, now)
    elif kind == _type(customer_events_pb2.SubscriptionChanged):
        line = _unpack(event, customer_events_pb2.SubscriptionChanged).subscription
        await _line_changed(session, line, source_event, at, now)
    elif kind == _type(customer_events_pb2.PaymentRecorded):
        paid = _unpack(event, customer_events_pb2.PaymentRecorded)
        await _payment_received(session, paid, source_event, at, now)
    elif kind == _type(customer_events_pb2.MonthlyUsageUpdated):
        usage = _unpack(event, customer_events_pb2.MonthlyUsageUpdated)
        await _usage_grew(session, usage, source_event, at, now)
    elif kind == _type(customer_events_pb2.SegmentsChanged):
        await _segments_changed(session, _unpack(event, customer_events_pb2.SegmentsChanged), now)
    elif kind == _type(customer_events_pb2.CustomerErased):
        erased = _unpack(event, customer_events_pb2.CustomerErased)
        account_id = CUSTOMER.parse_uuid(erased.customer, "customer")
        await close_erased_account(session, account_id, erased_at=at, now=now)


async def close_erased_account(
    session: AsyncSession, account_id: uuid.UUID, *, erased_at: datetime, now: datetime
) -> None:
    """Forgets the customer erased at `erased_at`: facts, words of the entries and earlier event
    payloads go; the numbers stay and no more points are posted."""
    if await store.lock_account(session, account_id) is None:
        # Erased before its account was opened: a closed account keeps later events (a payment
        # recorded after erasure) from opening one.
        await accounts.open_account(session, account_id, now)
    if await store.close_account(session, account_id):
        name = ACCOUNT.format(account_id)
        await store.erase_entry_words(session, account_id)
        await erase_aggregate_payloads(session, aggregate_type=AggregateType.LOYALTY_ACCOUNT, aggregate_id=name)
        await accounts.announce(session, account_id, [events_pb2.AccountClosed(account=name)], erased_at)


async def credit_anniversary(session: AsyncSession, account_id: uuid.UUID, now: datetime) -> int:
    """Credits the tenure anniversary that came by `now`, once, and moves to the next one; returns
    credits written."""
    today = now.date()
    account = await store.lock_account(session, account_id)
    profile = await store.customer_profile(session, account_id)
    if account is None or profile.tenure_start is None or profile.next_anniversary is None:
        return 0
    if profile.next_anniversary > today or account.state is not AccountState.ACTIVE:
        return 0
    years = program_rules.completed_years(profile.tenure_start, today)
    await store.update_customer_profile(
        session, account_id, next_anniversary=program_rules.anniversary(profile.tenure_start, years + 1)
    )
    program = await current_program(session)
    facts = CustomerFacts(profile.segments, profile.regions)
    written = 0
    for rule in program.rules_for(Trigger.TENURE_ANNIVERSARY):
        if years < 1 or not program_rules.applies(rule, facts, now):
            continue
        points = program_rules.tenure_points(rule, years, program.tier(account.tier))
        reason = f"{rule.display_name} ({years} years)"
        account, credited = await _credit(
            session, account, program, rule, points, reason, f"tenure-{years}", None, now=now
        )
        written += credited
    return written


async def _segments_changed(
    session: AsyncSession, segments: customer_events_pb2.SegmentsChanged, now: datetime
) -> None:
    account_id = CUSTOMER.parse_uuid(segments.customer, "customer")
    if await _open_account(session, account_id, now) is not None:
        await store.update_customer_profile(
            session,
            account_id,
            add_segments=tuple(m.segment for m in segments.entered),
            remove_segments=tuple(segments.left),
        )


async def _customer_seen(session: AsyncSession, customer: customer_pb2.Customer, now: datetime) -> None:
    account_id = CUSTOMER.parse_uuid(customer.name, "customer.name")
    if await _open_account(session, account_id, now) is None:
        return
    regions = tuple(
        medium.postal_address.region.strip()
        for medium in customer.contact_media
        if medium.HasField("postal_address") and medium.postal_address.region.strip()
    )
    await store.update_customer_profile(session, account_id, add_regions=regions)


async def _line_changed(
    session: AsyncSession, line: customer_pb2.Subscription, source_event: uuid.UUID, at: datetime, now: datetime
) -> None:
    account_id = customer_id_in(line.name, SUBSCRIPTION, "subscription.name")
    account = await _open_account(session, account_id, now)
    if account is None:
        return
    start = None
    if line.HasField("activation_date"):
        start = date_from_proto(line.activation_date, "subscription.activation_date")
    profile = await store.customer_profile(session, account_id)
    tenure_start = min(start, profile.tenure_start) if start and profile.tenure_start else start or profile.tenure_start
    next_anniversary = None
    if tenure_start is not None and tenure_start != profile.tenure_start:
        years = program_rules.completed_years(tenure_start, at.date())
        next_anniversary = program_rules.anniversary(tenure_start, years + 1)
    await store.update_customer_profile(
        session,
        account_id,
        add_regions=(line.home_region.strip(),) if line.home_region.strip() else (),
        tenure_start=start,
        next_anniversary=next_anniversary,
    )
    if line.status != customer_pb2.SUBSCRIPTION_STATUS_ACTIVE:
        return
    program, facts = await current_program(session), await _facts(session, account_id)
    for rule in program.rules_for(Trigger.FIRST_ACTIVATION):
        if program_rules.applies(rule, facts, at):
            points = program_rules.fixed_points(rule, program.tier(account.tier))
            account, _ = await _credit(
                session, account, program, rule, points, rule.display_name, "first-activation", source_event, now=now
            )


async def _payment_received(
    session: AsyncSession,
    paid: customer_events_pb2.PaymentRecorded,
    source_event: uuid.UUID,
    at: datetime,
    now: datetime,
) -> None:
    payment = paid.payment
    account_id = customer_id_in(payment.name, CUSTOMER_PAYMENT, "payment.name")
    account = await _open_account(session, account_id, now)
    if account is None:
        return
    amount = money_from_proto(payment.amount, "payment.amount")
    program, facts = await current_program(session), await _facts(session, account_id)
    for rule in program.rules_for(Trigger.PAYMENT_RECEIVED):
        if program_rules.applies(rule, facts, at):
            points = program_rules.payment_points(rule, amount, program.tier(account.tier))
            reason = f"{rule.display_name}: {amount.amount} {amount.currency_code}"
            account, _ = await _credit(
                session,
                account,
                program,
                rule,
                points,
                reason,
                payment.name,
                source_event,
                reference=payment.name,
                now=now,
            )


async def _usage_grew(
    session: AsyncSession,
    event: customer_events_pb2.MonthlyUsageUpdated,
    source_event: uuid.UUID,
    at: datetime,
    now: datetime,
) -> None:
    usage = event.usage
    account_id = customer_id_in(usage.subscription, SUBSCRIPTION, "usage.subscription")
    account = await _open_account(session, account_id, now)
    if account is None:
        return
    month = f"{usage.month.year:04d}-{usage.month.month:02d}"
    reference = f"{usage.subscription}/usage/{month}"
    totals = program_rules.MonthlyUsage(
        data_mb=usage.data_mb,
        voice_minutes=usage.on_net_minutes + usage.off_net_minutes + usage.international_minutes,
    )
    program, facts = await current_program(session), await _facts(session, account_id)
    for rule in program.rules_for(Trigger.MONTHLY_USAGE):
        if not program_rules.applies(rule, facts, at):
            continue
        earned_so_far = program_rules.usage_points(rule, totals, program.tier(account.tier))
        credited = await store.rule_points_for_reference(session, account_id, rule.id, reference)
        reason = f"{rule.display_name} ({month})"
        account, _ = await _credit(
            session,
            account,
            program,
            rule,
            earned_so_far - credited,
            reason,
            str(source_event),
            source_event,
            reference=reference,
            now=now,
        )


async def _credit(
    session: AsyncSession,
    account: Account,
    program: Program,
    rule: EarningRule,
    points: int,
    reason: str,
    source_key: str,
    source_event: uuid.UUID | None,
    *,
    reference: str = "",
    now: datetime,
) -> tuple[Account, int]:
    """Credits what a rule earned for one fact, unless it did before; returns the account after and
    the number of entries written."""
    if points <= 0 or await store.rule_credited(session, account.id, rule.id, source_key):
        return account, 0
    points = min(points, ledger.MAX_POINTS_PER_ENTRY)
    posting = ledger.earning_by_rule(points, rule.id, reason, source_key, source_event, reference)
    posted = await accounts.record(session, account, posting, program=program, now=now)
    # The account after the credit, with the tier it may have risen to: the next rule multiplies by it.
    return posted.account, 1


async def _open_account(session: AsyncSession, account_id: uuid.UUID, now: datetime) -> Account | None:
    """The customer's account, locked, opened first if the customer had none; None when closed."""
    account = await store.lock_account(session, account_id)
    if account is None:
        await accounts.open_account(session, account_id, now)
        account = await store.lock_account(session, account_id)
    if account is None or account.state is not AccountState.ACTIVE:
        return None
    return account


async def _facts(session: AsyncSession, account_id: uuid.UUID) -> CustomerFacts:
    profile = await store.customer_profile(session, account_id)
    return CustomerFacts(profile.segments, profile.regions)


def _unpack(event: common_events_pb2.Event, message_type: type[EventMessage]) -> EventMessage:
    message = message_type()
    event.payload.Unpack(message)
    return message
