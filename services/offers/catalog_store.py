"""The catalog's tables: every version of every offering, and which version is current."""

from typing import Any

from sqlalchemy import MetaData, Row, text
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.database import rows_affected
from chassis.idempotency import idempotency_table
from chassis.pagination import PageRequest
from services.offers.catalog import (
    Allowance,
    Allowances,
    Lifecycle,
    Offering,
    OfferingKind,
    OverageRates,
    PriceModel,
    Technology,
)
from services.offers.money import Money

metadata = MetaData()
idempotency_keys = idempotency_table(metadata)

MAX_MARKET_OFFERINGS = 1000
"""Most offerings of one kind a market's recommendation reads; a catalog is a few dozen."""

_CURRENT = (
    "SELECT v.* FROM product_offerings o JOIN product_offering_versions v ON v.name = o.name AND v.version = o.version"
)


async def insert_offering(session: AsyncSession, offering: Offering, author: str) -> bool:
    """Writes version 1 of a new offering; False when the name is taken."""
    claimed = await session.execute(
        text(
            "INSERT INTO product_offerings (name, kind, market, lifecycle, version) "
            "VALUES (:name, :kind, :market, :lifecycle, 0) ON CONFLICT (name) DO NOTHING"
        ),
        {"name": offering.name, "kind": offering.kind.value, "market": offering.market, "lifecycle": "ACTIVE"},
    )
    if rows_affected(claimed) == 0:
        return False
    await write_version(session, offering, author)
    return True


async def write_version(session: AsyncSession, offering: Offering, author: str) -> None:
    """Appends `offering` as its newest version and makes it current."""
    await session.execute(
        text(f"INSERT INTO product_offering_versions ({_COLUMNS}) VALUES ({_VALUES})"), _row(offering, author)
    )
    await session.execute(
        text("UPDATE product_offerings SET version = :version, lifecycle = :lifecycle WHERE name = :name"),
        {"name": offering.name, "version": offering.version, "lifecycle": offering.lifecycle.value},
    )


async def get_offering(session: AsyncSession, name: str) -> Offering | None:
    """The current version of an offering."""
    row = (await session.execute(text(f"{_CURRENT} WHERE o.name = :name"), {"name": name})).first()
    return offering_from_row(row) if row else None


async def lock_offering(session: AsyncSession, name: str) -> Offering | None:
    """The current version, with the offering locked until the transaction ends."""
    row = (await session.execute(text(f"{_CURRENT} WHERE o.name = :name FOR UPDATE OF o"), {"name": name})).first()
    return offering_from_row(row) if row else None


async def get_version(session: AsyncSession, name: str, version: int) -> Offering | None:
    """One version of an offering."""
    row = (
        await session.execute(
            text("SELECT * FROM product_offering_versions WHERE name = :name AND version = :version"),
            {"name": name, "version": version},
        )
    ).first()
    return offering_from_row(row) if row else None


async def list_offerings(
    session: AsyncSession,
    page: PageRequest,
    *,
    kind: OfferingKind | None,
    market: str,
    lifecycle: Lifecycle | None,
) -> list[Offering]:
    """A page of current versions by name, after the page's name."""
    after = str(page.after[0]) if page.after else ""
    rows = await session.execute(
        text(
            f"{_CURRENT} WHERE o.name > :after AND (:kind = '' OR o.kind = :kind) "
            "AND (:market = '' OR o.market = :market) AND (:lifecycle = '' OR o.lifecycle = :lifecycle) "
            "ORDER BY o.name LIMIT :limit"
        ),
        {
            "after": after,
            "kind": kind.value if kind else "",
            "market": market,
            "lifecycle": lifecycle.value if lifecycle else "",
            "limit": page.fetch_size,
        },
    )
    return [offering_from_row(row) for row in rows]


async def list_versions(session: AsyncSession, name: str, page: PageRequest) -> list[Offering]:
    """A page of an offering's versions, newest first."""
    before = page.after_int()
    rows = await session.execute(
        text(
            "SELECT * FROM product_offering_versions WHERE name = :name AND (:before = 0 OR version < :before) "
            "ORDER BY version DESC LIMIT :limit"
        ),
        {"name": name, "before": before or 0, "limit": page.fetch_size},
    )
    return [offering_from_row(row) for row in rows]


async def market_offerings(session: AsyncSession, market: str, kind: OfferingKind) -> list[Offering]:
    """The current versions of a market's offerings of one kind, active or retired."""
    rows = await session.execute(
        text(f"{_CURRENT} WHERE o.market = :market AND o.kind = :kind ORDER BY o.name LIMIT :limit"),
        {"market": market, "kind": kind.value, "limit": MAX_MARKET_OFFERINGS},
    )
    return [offering_from_row(row) for row in rows]


def offering_from_row(row: Row[Any]) -> Offering:
    """The offering a version row holds."""
    kind = OfferingKind(row.kind)
    return Offering(
        kind=kind,
        offering_id=row.name.split("/", 1)[1],
        display_name=row.display_name,
        description=row.description,
        market=row.market,
        price_model=PriceModel(row.price_model),
        price=Money(row.price_minor, row.currency),
        allowances=Allowances(
            on_net_minutes=Allowance(row.on_net_minutes, row.unlimited_on_net_minutes),
            off_net_minutes=Allowance(row.off_net_minutes, row.unlimited_off_net_minutes),
            sms=Allowance(row.sms, row.unlimited_sms),
            data_mb=Allowance(row.data_mb, row.unlimited_data),
        ),
        overage=OverageRates(
            on_net_minute=row.overage_on_net_minute_minor,
            off_net_minute=row.overage_off_net_minute_minor,
            sms=row.overage_sms_minor,
            data_mb=row.overage_data_mb_minor,
        ),
        required_technology=Technology(row.required_technology),
        regions=tuple(row.regions),
        start_time=row.start_time,
        end_time=row.end_time,
        lifecycle=Lifecycle(row.lifecycle),
        promoted=row.promoted,
        version=row.version,
        create_time=row.create_time,
        update_time=row.update_time,
        retire_time=row.retire_time,
    )


def _row(offering: Offering, author: str) -> dict[str, object]:
    allowances, overage = offering.allowances, offering.overage
    return {
        "name": offering.name,
        "version": offering.version,
        "kind": offering.kind.value,
        "display_name": offering.display_name,
        "description": offering.description,
        "market": offering.market,
        "currency": offering.currency,
        "price_model": offering.price_model.value,
        "price_minor": offering.price.minor,
        "on_net_minutes": allowances.on_net_minutes.amount,
        "unlimited_on_net_minutes": allowances.on_net_minutes.unlimited,
        "off_net_minutes": allowances.off_net_minutes.amount,
        "unlimited_off_net_minutes": allowances.off_net_minutes.unlimited,
        "sms": allowances.sms.amount,
        "unlimited_sms": allowances.sms.unlimited,
        "data_mb": allowances.data_mb.amount,
        "unlimited_data": allowances.data_mb.unlimited,
        "overage_on_net_minute_minor": overage.on_net_minute,
        "overage_off_net_minute_minor": overage.off_net_minute,
        "overage_sms_minor": overage.sms,
        "overage_data_mb_minor": overage.data_mb,
        "required_technology": offering.required_technology.value,
        "regions": list(offering.regions),
        "start_time": offering.start_time,
        "end_time": offering.end_time,
        "lifecycle": offering.lifecycle.value,
        "promoted": offering.promoted,
        "create_time": offering.create_time,
        "update_time": offering.update_time,
        "retire_time": offering.retire_time,
        "author": author,
    }


_COLUMN_NAMES = (
    "name", "version", "kind", "display_name", "description", "market", "currency", "price_model", "price_minor",
    "on_net_minutes", "unlimited_on_net_minutes", "off_net_minutes", "unlimited_off_net_minutes", "sms",
    "unlimited_sms", "data_mb", "unlimited_data", "overage_on_net_minute_minor", "overage_off_net_minute_minor",
    "overage_sms_minor", "overage_data_mb_minor", "required_technology", "regions", "start_time", "end_time",
    "lifecycle", "promoted", "create_time", "update_time", "retire_time", "author",
)  # fmt: skip
_COLUMNS = ", ".join(_COLUMN_NAMES)
_VALUES = ", ".join(f":{column}" for column in _COLUMN_NAMES)
