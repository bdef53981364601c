"""Tables and queries of customers, their lines and consent history. Every request-path query is
served by an index."""

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    Row,
    Select,
    String,
    Table,
    Text,
    func,
    literal,
    select,
    union,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.pagination import PageRequest
from services.customer.customers.consent import ConsentDecision, ConsentPurpose, ConsentRecord
from services.customer.customers.lifecycle import ChurnReason, Customer, CustomerStatus
from services.customer.customers.lines import Subscription, SubscriptionPurpose, SubscriptionStatus
from services.customer.customers.profile import (
    Channel,
    ContactMedium,
    CustomerProfile,
    Gender,
    Individual,
    Organization,
    OrganizationKind,
    PostalAddress,
)
from services.customer.customers.search import SearchCriteria

metadata = MetaData()

customers = Table(
    "customers",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("party_type", String, nullable=False),
    Column("given_name", Text),
    Column("family_name", Text),
    Column("middle_name", Text),
    Column("birth_date", Date),
    Column("gender", String),
    Column("preferred_language", String),
    Column("legal_name", Text),
    Column("trading_name", Text),
    Column("tax_id", String),
    Column("organization_kind", String),
    Column("contact_media", JSONB, nullable=False),
    Column("phone_numbers", ARRAY(Text), nullable=False),
    Column("region_key", Text, nullable=False),
    Column("search_key", Text, nullable=False),
    Column("acquisition_channel", String),
    Column("retailer_id", String, nullable=False),
    Column("status", String, nullable=False),
    Column("churn_reason", String),
    Column("churn_detail", Text, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("creator", String, nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
    Column("updater", String, nullable=False),
    Column("version", Integer, nullable=False),
    Column("delete_time", DateTime(timezone=True)),
    Column("erase_time", DateTime(timezone=True)),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("customer_id", UUID(as_uuid=True), ForeignKey("customers.id"), nullable=False),
    Column("msisdn", String, nullable=False),
    Column("tariff_plan_id", String, nullable=False),
    Column("activation_date", Date, nullable=False),
    Column("status", String, nullable=False),
    Column("purpose", String, nullable=False),
    Column("home_region", Text, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
)

consent_records = Table(
    "consent_records",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("customer_id", UUID(as_uuid=True), ForeignKey("customers.id"), nullable=False),
    Column("purpose", String, nullable=False),
    Column("decision", String, nullable=False),
    Column("channel", String, nullable=False),
    Column("record_time", DateTime(timezone=True), nullable=False),
    Column("recorder", String, nullable=False),
)

# Customers -----------------------------------------------------------------------------------------


async def insert_customer(session: AsyncSession, customer: Customer) -> None:
    """Stores a new customer."""
    await session.execute(customers.insert().values(id=customer.id, **_customer_columns(customer)))


async def update_customer(session: AsyncSession, customer: Customer) -> None:
    """Writes a customer whose row the caller locked with `lock_customer`."""
    await session.execute(customers.update().where(customers.c.id == customer.id).values(**_customer_columns(customer)))


async def lock_customer(session: AsyncSession, customer_id: uuid.UUID) -> Customer | None:
    """The customer, locked until the transaction ends, so that concurrent changes queue up."""
    row = (
        await session.execute(
            select(customers).where(customers.c.id == customer_id, customers.c.delete_time.is_(None)).with_for_update()
        )
    ).first()
    return _customer(row) if row else None


async def get_customer(session: AsyncSession, customer_id: uuid.UUID) -> Customer | None:
    """The customer, unless it does not exist or was deleted."""
    row = (
        await session.execute(select(customers).where(customers.c.id == customer_id, customers.c.delete_time.is_(None)))
    ).first()
    return _customer(row) if row else None


async def mark_customer_deleted(session: AsyncSession, customer_id: uuid.UUID, *, now: datetime, actor: str) -> None:
    """Hides the customer from reads; lines and consent history stay for audit."""
    await session.execute(
        customers.update()
        .where(customers.c.id == customer_id)
        .values(delete_time=now, update_time=now, updater=actor, version=customers.c.version + 1)
    )


async def list_customers(session: AsyncSession, page: PageRequest) -> list[Customer]:
    """A page of customers in id order (one more than asked, to tell whether more follow)."""
    query = select(customers).where(customers.c.delete_time.is_(None))
    if (after := page.after_uuid()) is not None:
        query = query.where(customers.c.id > after)
    rows = await session.execute(query.order_by(customers.c.id).limit(page.fetch_size))
    return [_customer(row) for row in rows]


async def search_customers(session: AsyncSession, criteria: SearchCriteria, page: PageRequest) -> list[Customer]:
    """A page of customers matching every given criterion, in id order (one extra row)."""
    rows = await session.execute(search_statement(criteria, page))
    return [_customer(row) for row in rows]


def search_statement(criteria: SearchCriteria, page: PageRequest) -> Select[Any]:
    """The search query; every criterion is served by an index (see the 0001 migration)."""
    query = select(customers).where(customers.c.delete_time.is_(None))
    if criteria.phone_number:
        # A union of two index lookups (contact numbers, line numbers); an OR would scan the table.
        owners = union(
            select(customers.c.id).where(
                customers.c.delete_time.is_(None), customers.c.phone_numbers.contains([criteria.phone_number])
            ),
            select(subscriptions.c.customer_id).where(subscriptions.c.msisdn == criteria.phone_number),
        )
        query = query.where(customers.c.id.in_(owners))
    for word in criteria.name_key.split():
        # Each word anywhere in the names: "dang thi" finds "Thị Hồng Đặng" as well as "Đặng Thị Hồng".
        query = query.where(customers.c.search_key.like(f"%{_escape_like(word)}%", escape="!"))
    if criteria.status:
        query = query.where(customers.c.status == criteria.status.value)
    if criteria.region_key:
        query = query.where(customers.c.region_key == criteria.region_key)
    if criteria.retailer_id:
        query = query.where(customers.c.retailer_id == criteria.retailer_id)
    if (after := page.after_uuid()) is not None:
        query = query.where(customers.c.id > after)
    return query.order_by(customers.c.id).limit(page.fetch_size)


def _escape_like(text: str) -> str:
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def _customer_columns(customer: Customer) -> dict[str, object]:
    profile = customer.profile
    party = profile.party
    columns: dict[str, object] = {
        "party_type": "individual" if isinstance(party, Individual) else "organization",
        "given_name": None,
        "family_name": None,
        "middle_name": None,
        "birth_date": None,
        "gender": None,
        "preferred_language": None,
        "legal_name": None,
        "trading_name": None,
        "tax_id": None,
        "organization_kind": None,
        "contact_media": [_medium_json(m) for m in profile.contact_media],
        "phone_numbers": profile.phone_numbers,
        "region_key": profile.region_key,
        "search_key": customer.search_key,
        "acquisition_channel": profile.acquisition_channel.value if profile.acquisition_channel else None,
        "retailer_id": profile.retailer_id,
        "status": customer.status.value,
        "churn_reason": customer.churn_reason.value if customer.churn_reason else None,
        "churn_detail": customer.churn_detail,
        "create_time": customer.create_time,
        "creator": customer.creator,
        "update_time": customer.update_time,
        "updater": customer.updater,
        "version": customer.version,
        "erase_time": customer.erase_time,
    }
    if isinstance(party, Individual):
        columns.update(
            given_name=party.given_name,
            family_name=party.family_name,
            middle_name=party.middle_name,
            birth_date=party.birth_date,
            gender=party.gender.value if party.gender else None,
            preferred_language=party.preferred_language,
        )
    else:
        columns.update(
            legal_name=party.legal_name,
            trading_name=party.trading_name,
            tax_id=party.tax_id,
            organization_kind=party.kind.value if party.kind else None,
        )
    return columns


def _medium_json(medium: ContactMedium) -> dict[str, object]:
    if medium.phone_number is not None:
        return {"phone_number": medium.phone_number, "preferred": medium.preferred}
    if medium.email_address is not None:
        return {"email_address": medium.email_address, "preferred": medium.preferred}
    address = medium.postal_address or PostalAddress()
    return {
        "postal_address": {
            "country_code": address.country_code,
            "region": address.region,
            "city": address.city,
            "address_lines": list(address.address_lines),
            "postal_code": address.postal_code,
        },
        "preferred": medium.preferred,
    }


def _medium(data: dict[str, Any]) -> ContactMedium:
    address = data.get("postal_address")
    return ContactMedium(
        phone_number=data.get("phone_number"),
        email_address=data.get("email_address"),
        postal_address=PostalAddress(
            country_code=address["country_code"],
            region=address["region"],
            city=address["city"],
            address_lines=tuple(address["address_lines"]),
            postal_code=address["postal_code"],
        )
        if address
        else None,
        preferred=bool(data.get("preferred")),
    )


def _customer(row: Row[Any]) -> Customer:
    party: Individual | Organization
    if row.party_type == "individual":
        party = Individual(
            given_name=row.given_name,
            family_name=row.family_name,
            middle_name=row.middle_name or "",
            birth_date=row.birth_date,
            gender=Gender(row.gender) if row.gender else None,
            preferred_language=row.preferred_language or "",
        )
    else:
        party = Organization(
            legal_name=row.legal_name,
            trading_name=row.trading_name or "",
            tax_id=row.tax_id or "",
            kind=OrganizationKind(row.organization_kind) if row.organization_kind else None,
        )
    profile = CustomerProfile(
        party=party,
        contact_media=tuple(_medium(m) for m in row.contact_media),
        acquisition_channel=Channel(row.acquisition_channel) if row.acquisition_channel else None,
        retailer_id=row.retailer_id,
    )
    return Customer(
        id=row.id,
        profile=profile,
        status=CustomerStatus(row.status),
        churn_reason=ChurnReason(row.churn_reason) if row.churn_reason else None,
        churn_detail=row.churn_detail,
        create_time=row.create_time,
        creator=row.creator,
        update_time=row.update_time,
        updater=row.updater,
        version=row.version,
        erase_time=row.erase_time,
    )


# Erasure -------------------------------------------------------------------------------------------


async def lock_customer_for_erasure(session: AsyncSession, customer_id: uuid.UUID) -> Customer | None:
    """The customer, deleted or not (a deleted customer's data is still held), locked until the
    transaction ends."""
    row = (await session.execute(select(customers).where(customers.c.id == customer_id).with_for_update())).first()
    return _customer(row) if row else None


# Subscriptions -------------------------------------------------------------------------------------


async def insert_subscription(session: AsyncSession, subscription: Subscription) -> None:
    """Stores a new line."""
    await session.execute(subscriptions.insert().values(**_subscription_columns(subscription)))


async def update_subscription(session: AsyncSession, subscription: Subscription) -> None:
    """Writes a line locked with `lock_subscription`."""
    await session.execute(
        subscriptions.update()
        .where(subscriptions.c.id == subscription.id)
        .values(**_subscription_columns(subscription))
    )


async def msisdn_in_service(session: AsyncSession, msisdn: str) -> bool:
    """Whether a line not terminated already has this number."""
    query = select(literal(1)).where(
        subscriptions.c.msisdn == msisdn, subscriptions.c.status != SubscriptionStatus.TERMINATED.value
    )
    return (await session.execute(query.limit(1))).first() is not None


async def lock_subscription(
    session: AsyncSession, customer_id: uuid.UUID, subscription_id: uuid.UUID
) -> Subscription | None:
    """The line of that customer, locked until the transaction ends."""
    row = (
        await session.execute(
            select(subscriptions)
            .where(subscriptions.c.customer_id == customer_id, subscriptions.c.id == subscription_id)
            .with_for_update()
        )
    ).first()
    return _subscription(row) if row else None


async def get_subscription(
    session: AsyncSession, customer_id: uuid.UUID, subscription_id: uuid.UUID
) -> Subscription | None:
    """The line of that customer."""
    row = (
        await session.execute(
            select(subscriptions).where(
                subscriptions.c.customer_id == customer_id, subscriptions.c.id == subscription_id
            )
        )
    ).first()
    return _subscription(row) if row else None


async def list_subscriptions(session: AsyncSession, customer_id: uuid.UUID, page: PageRequest) -> list[Subscription]:
    """A page of a customer's lines in id order (one extra row)."""
    query = select(subscriptions).where(subscriptions.c.customer_id == customer_id)
    if (after := page.after_uuid()) is not None:
        query = query.where(subscriptions.c.id > after)
    rows = await session.execute(query.order_by(subscriptions.c.id).limit(page.fetch_size))
    return [_subscription(row) for row in rows]


async def all_subscriptions(session: AsyncSession, customer_id: uuid.UUID) -> list[Subscription]:
    """Every line of one customer (a handful), for rules that look at all of them."""
    rows = await session.execute(select(subscriptions).where(subscriptions.c.customer_id == customer_id))
    return [_subscription(row) for row in rows]


async def first_activation_date(session: AsyncSession, customer_id: uuid.UUID) -> date | None:
    """When the customer's earliest line was activated; None without lines."""
    query = select(func.min(subscriptions.c.activation_date)).where(subscriptions.c.customer_id == customer_id)
    first: date | None = (await session.execute(query)).scalar()
    return first


def _subscription_columns(subscription: Subscription) -> dict[str, object]:
    if subscription.purpose is None or subscription.activation_date is None:
        raise ValueError("a line is stored only once normalized_subscription has checked it")
    return {
        "id": subscription.id,
        "customer_id": subscription.customer_id,
        "msisdn": subscription.msisdn,
        "tariff_plan_id": subscription.tariff_plan_id,
        "activation_date": subscription.activation_date,
        "status": subscription.status.value,
        "purpose": subscription.purpose.value,
        "home_region": subscription.home_region,
        "create_time": subscription.create_time,
        "update_time": subscription.update_time,
        "version": subscription.version,
    }


def _subscription(row: Row[Any]) -> Subscription:
    activation: date = row.activation_date
    return Subscription(
        id=row.id,
        customer_id=row.customer_id,
        msisdn=row.msisdn,
        tariff_plan_id=row.tariff_plan_id,
        activation_date=activation,
        status=SubscriptionStatus(row.status),
        purpose=SubscriptionPurpose(row.purpose),
        home_region=row.home_region,
        create_time=row.create_time,
        update_time=row.update_time,
        version=row.version,
    )


# Consent -------------------------------------------------------------------------------------------


async def insert_consent_record(
    session: AsyncSession,
    customer_id: uuid.UUID,
    *,
    purpose: ConsentPurpose,
    decision: ConsentDecision,
    channel: Channel,
    now: datetime,
    actor: str,
) -> ConsentRecord:
    """Appends a decision to the customer's history."""
    record_id = (
        await session.execute(
            consent_records.insert()
            .values(
                customer_id=customer_id,
                purpose=purpose.value,
                decision=decision.value,
                channel=channel.value,
                record_time=now,
                recorder=actor,
            )
            .returning(consent_records.c.id)
        )
    ).scalar_one()
    return ConsentRecord(record_id, customer_id, purpose, decision, channel, now, actor)


async def latest_consent_records(session: AsyncSession, customer_id: uuid.UUID) -> list[ConsentRecord]:
    """The newest record of each purpose the customer decided on."""
    query = (
        select(consent_records)
        .distinct(consent_records.c.purpose)
        .where(consent_records.c.customer_id == customer_id)
        .order_by(consent_records.c.purpose, consent_records.c.id.desc())
    )
    return [_consent_record(row) for row in await session.execute(query)]


async def list_consent_records(session: AsyncSession, customer_id: uuid.UUID, page: PageRequest) -> list[ConsentRecord]:
    """A page of the customer's history, newest first (one extra row)."""
    query = select(consent_records).where(consent_records.c.customer_id == customer_id)
    if (after := page.after_int()) is not None:
        query = query.where(consent_records.c.id < after)
    rows = await session.execute(query.order_by(consent_records.c.id.desc()).limit(page.fetch_size))
    return [_consent_record(row) for row in rows]


def _consent_record(row: Row[Any]) -> ConsentRecord:
    return ConsentRecord(
        id=row.id,
        customer_id=row.customer_id,
        purpose=ConsentPurpose(row.purpose),
        decision=ConsentDecision(row.decision),
        channel=Channel(row.channel),
        record_time=row.record_time,
        recorder=row.recorder,
    )
