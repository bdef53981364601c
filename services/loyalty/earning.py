"""The customer service's events, applied to loyalty accounts: accounts open when customers are
created, payments and usage earn points by the program's rules, lines and segments keep the facts
that rules look at, erasure closes the account.

Each event runs inside the consumer's transaction that records it as applied (exactly once). A
business refusal (a closed account) means the event has no effect; it must not stop the feed.
Events whose payload was emptied by a later erasure are skipped. Each rule credits one business
fact at most once (a unique index backs this), so a payment announced twice earns once.
"""

import uuid
from datetime import UTC, date, datetime
from typing import TypeVar

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.outbox import erase_aggregate_payloads
from crm.common.v1 import events_pb2 as common_events_pb2
from crm.customer.v1 import customer_pb2
from crm.customer.v1 import events_pb2 as customer_events_pb2
from crm.loyalty.v1 import events_pb2
from services.loyalty import accounts, ledger, program_rules, store
from services.loyalty.ledger import Account, AccountState
from services.loyalty.mapping import account_name, money_from_proto
from services.loyalty.program_rules import CustomerFacts, EarningRule, Program, Trigger
from services.loyalty.program_versions import current_program

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


async def apply_customer_event(session: AsyncSession, event: common_events_pb2.Event) -> None:
    """Applies one customer event to the loyalty accounts."""
    if not event.payload.value:
        # The customer was erased after this event: its facts are gone, and so is the account's use for them.
        return
    at = event.event_time.ToDatetime(tzinfo=UTC) if event.HasField("event_time") else datetime.now(UTC)
    source_event = uuid.UUID(event.event_id)
    kind = event.event_type
    if kind == _type(customer_events_pb2.CustomerCreated):
        await _customer_seen(session, _unpack(event, customer_events_pb2.CustomerCreated).customer)
    elif kind == _type(customer_events_pb2.CustomerUpdated):
        await _customer_seen(session, _unpack(event, customer_events_pb2.CustomerUpdated).customer)
    elif kind == _type(customer_events_pb2.SubscriptionChanged):
        line = _unpack(event, customer_events_pb2.SubscriptionChanged).subscription
        await _line_changed(session, line, source_event, at)
    elif kind == _type(customer_events_pb2.PaymentRecorded):
        await _payment_received(session, _unpack(event, customer_events_pb2.PaymentRecorded), source_event, at)
    elif kind == _type(customer_events_pb2.MonthlyUsageUpdated):
        await _usage_grew(session, _unpack(event, customer_events_pb2.MonthlyUsageUpdated), source_event, at)
    elif kind == _type(customer_events_pb2.SegmentsChanged):
        await _segments_changed(session, _unpack(event, customer_events_pb2.SegmentsChanged))
    elif kind == _type(customer_events_pb2.CustomerErased):
        erased = _unpack(event, customer_events_pb2.CustomerErased)
        await close_erased_account(session, _customer_id(erased.customer), at)


async def close_erased_account(session: AsyncSession, account_id: uuid.UUID, now: datetime) -> None:
    """Forgets the customer: facts, words of the entries and earlier event payloads go; the
    numbers stay and no more points are posted."""
    if await store.lock_account(session, account_id) is None:
        # Erased before its account was opened: a closed account keeps later events (a payment
        # recorded after erasure) from opening one.
        await accounts.open_account(session, account_id)
    if await store.close_account(session, account_id):
        await store.erase_entry_words(session, account_id)
        await erase_aggregate_payloads(
            session, aggregate_type=accounts.AGGREGATE_TYPE, aggregate_id=account_name(account_id)
        )
        await accounts.announce(session, account_id, [events_pb2.AccountClosed(account=account_name(account_id))], now)


async def credit_anniversary(session: AsyncSession, account_id: uuid.UUID, today: date) -> int:
    """Credits the tenure anniversary that came, once, and moves to the next one; returns credits written."""
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
    plan = await current_program(session)
    facts = CustomerFacts(profile.segments, profile.regions)
    written = 0
    now = datetime.now(UTC)
    for rule in plan.rules_for(Trigger.TENURE_ANNIVERSARY):
        if years < 1 or not program_rules.applies(rule, facts, now):
            continue
        points = program_rules.tenure_points(rule, years, plan.tier(account.tier))
        reason = f"{rule.display_name} ({years} years)"
        account, credited = await _credit(session, account, plan, rule, points, reason, f"tenure-{years}", None)
        written += credited
    return written


async def _segments_changed(session: AsyncSession, segments: customer_events_pb2.SegmentsChanged) -> None:
    account_id = _customer_id(segments.customer)
    if await _open_account(session, account_id) is not None:
        await store.update_customer_profile(
            session,
            account_id,
            add_segments=tuple(m.segment for m in segments.entered),
            remove_segments=tuple(segments.left),
        )


async def _customer_seen(session: AsyncSession, customer: customer_pb2.Customer) -> None:
    account_id = _customer_id(customer.name)
    if await _open_account(session, account_id) is None:
        return
    regions = tuple(
        medium.postal_address.region.strip()
        for medium in customer.contact_media
        if medium.HasField("postal_address") and medium.postal_address.region.strip()
    )
    await store.update_customer_profile(session, account_id, add_regions=regions)


async def _line_changed(
    session: AsyncSession, line: customer_pb2.Subscription, source_event: uuid.UUID, at: datetime
) -> None:
    account_id = _customer_id(line.name)
    account = await _open_account(session, account_id)
    if account is None:
        return
    start = None
    if line.HasField("activation_date") and line.activation_date.year:
        start = date(line.activation_date.year, line.activation_date.month, line.activation_date.day)
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
    plan, facts = await current_program(session), await _facts(session, account_id)
    for rule in plan.rules_for(Trigger.FIRST_ACTIVATION):
        if program_rules.applies(rule, facts, at):
            points = program_rules.fixed_points(rule, plan.tier(account.tier))
            account, _ = await _credit(
                session, account, plan, rule, points, rule.display_name, "first-activation", source_event
            )


async def _payment_received(
    session: AsyncSession, paid: customer_events_pb2.PaymentRecorded, source_event: uuid.UUID, at: datetime
) -> None:
    payment = paid.payment
    account_id = _customer_id(payment.name)
    account = await _open_account(session, account_id)
    if account is None:
        return
    amount = money_from_proto(payment.amount, "payment.amount")
    plan, facts = await current_program(session), await _facts(session, account_id)
    for rule in plan.rules_for(Trigger.PAYMENT_RECEIVED):
        if program_rules.applies(rule, facts, at):
            points = program_rules.payment_points(rule, amount, plan.tier(account.tier))
            reason = f"{rule.display_name}: {amount.amount} {amount.currency_code}"
            account, _ = await _credit(
                session, account, plan, rule, points, reason, payment.name, source_event, reference=payment.name
            )


async def _usage_grew(
    session: AsyncSession, event: customer_events_pb2.MonthlyUsageUpdated, source_event: uuid.UUID, at: datetime
) -> None:
    usage = event.usage
    account_id = _customer_id(usage.subscription)
    account = await _open_account(session, account_id)
    if account is None:
        return
    month = f"{usage.month.year:04d}-{usage.month.month:02d}"
    reference = f"{usage.subscription}/usage/{month}"
    totals = program_rules.MonthlyUsage(
        data_mb=usage.data_mb,
        voice_minutes=usage.on_net_minutes + usage.off_net_minutes + usage.international_minutes,
    )
    plan, facts = await current_program(session), await _facts(session, account_id)
    for rule in plan.rules_for(Trigger.MONTHLY_USAGE):
        if not program_rules.applies(rule, facts, at):
            continue
        earned_so_far = program_rules.usage_points(rule, totals, plan.tier(account.tier))
        credited = await store.rule_points_for_reference(session, account_id, rule.id, reference)
        reason = f"{rule.display_name} ({month})"
        account, _ = await _credit(
            session,
            account,
            plan,
            rule,
            earned_so_far - credited,
            reason,
            str(source_event),
            source_event,
            reference=reference,
        )


async def _credit(
    session: AsyncSession,
    account: Account,
    plan: Program,
    rule: EarningRule,
    points: int,
    reason: str,
    source_key: str,
    source_event: uuid.UUID | None,
    *,
    reference: str = "",
) -> tuple[Account, int]:
    """Credits what a rule earned for one fact, unless it did before; returns the account after and
    the number of entries written."""
    if points <= 0 or await store.rule_credited(session, account.id, rule.id, source_key):
        return account, 0
    points = min(points, ledger.MAX_POINTS_PER_ENTRY)
    posting = ledger.earning_by_rule(points, rule.id, reason, source_key, source_event, reference)
    posted = await accounts.record(session, account, posting, program=plan)
    # The account after the credit, with the tier it may have risen to: the next rule multiplies by it.
    return posted.account, 1


async def _open_account(session: AsyncSession, account_id: uuid.UUID) -> Account | None:
    """The customer's account, locked, opened first if the customer had none; None when closed."""
    account = await store.lock_account(session, account_id)
    if account is None:
        await accounts.open_account(session, account_id)
        account = await store.lock_account(session, account_id)
    if account is None or account.state is not AccountState.ACTIVE:
        return None
    return account


async def _facts(session: AsyncSession, account_id: uuid.UUID) -> CustomerFacts:
    profile = await store.customer_profile(session, account_id)
    return CustomerFacts(profile.segments, profile.regions)


def _customer_id(name: str) -> uuid.UUID:
    """The customer id at the start of a customer-service resource name (`customers/{id}/...`)."""
    return uuid.UUID(name.split("/")[1])


def _unpack(event: common_events_pb2.Event, message_type: type[EventMessage]) -> EventMessage:
    message = message_type()
    event.payload.Unpack(message)
    return message
