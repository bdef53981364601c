"""Offerings for the offers integration tests, each under a fresh id so that tests sharing the
database never meet."""

import uuid

from google.type import money_pb2

from crm.customer.v1 import usage_pb2
from crm.offers.v1 import catalog_pb2, offers_service_pb2
from crm.offers.v1.offers_service_pb2_grpc import OfferServiceStub
from tests.support import request_id

CURRENCIES = {"UZ": "UZS", "KZ": "KZT", "UA": "UAH", "VN": "VND"}


def som(amount: int, currency: str = "UZS") -> money_pb2.Money:
    """An amount of whole som (or of another currency's main unit)."""
    return money_pb2.Money(currency_code=currency, units=amount)


def tariff(
    display_name: str,
    *,
    price: int,
    market: str = "UZ",
    model: catalog_pb2.PriceModel = catalog_pb2.PRICE_MODEL_MONTHLY,
    on_net: int = 300,
    off_net: int = 100,
    sms: int = 100,
    data_mb: int = 5_000,
    per_mb: int = 10,
    per_minute: int = 100,
    technology: usage_pb2.RadioTechnology = usage_pb2.RADIO_TECHNOLOGY_UNSPECIFIED,
    regions: tuple[str, ...] = ("No line's region",),
    promoted: bool = False,
    kind: catalog_pb2.OfferingKind = catalog_pb2.OFFERING_KIND_TARIFF_PLAN,
) -> catalog_pb2.ProductOffering:
    """A plan of a market (Uzbek by default), priced in whole units of its currency, sold by default in
    a region where no test's line lives (so that it never enters another test's advice)."""
    currency = CURRENCIES[market]
    return catalog_pb2.ProductOffering(
        kind=kind,
        display_name=display_name,
        market=market,
        price_model=model,
        price=som(price, currency),
        allowances=catalog_pb2.Allowances(on_net_minutes=on_net, off_net_minutes=off_net, sms=sms, data_mb=data_mb),
        overage_rates=catalog_pb2.OverageRates(
            on_net_minute=som(per_minute, currency),
            off_net_minute=som(per_minute * 2, currency),
            sms=som(50, currency),
            data_mb=som(per_mb, currency),
        ),
        required_technology=technology,
        regions=list(regions),
        promoted=promoted,
    )


def fresh_region() -> str:
    """A home region no other test uses: tests sharing the database keep to their own plans by selling
    them in their own region only."""
    return f"Region {uuid.uuid4().hex[:8]}"


async def create(offers: OfferServiceStub, offering: catalog_pb2.ProductOffering, prefix: str = "t") -> str:
    """Creates `offering` under a fresh id; returns its name."""
    created = await offers.CreateProductOffering(
        offers_service_pb2.CreateProductOfferingRequest(
            product_offering=offering, product_offering_id=f"{prefix}-{uuid.uuid4().hex[:12]}", request_id=request_id()
        ),
        timeout=5,
    )
    return created.name
