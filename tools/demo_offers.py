"""Demo offers for a local run: a catalog for each demo market the offers service sells in (tariff
plans priced by the month, by the calendar day or by the day of use, add-on bundles among them a
video bundle that needs 4G), the coverage of every area the demo usage names (tools.demo_network),
and honest tariff advice for lines still on an old plan that costs them more than a current one.

Marketing fills the catalog and the coverage (the batch identity `demo-marketing`); one customer on
an old plan takes the advice in the app with their own token, so that the line moves to the cheaper
plan with their recorded acceptance.

Russia has no catalog: the offers service quotes prices in the currencies of its markets (UZ, UA,
VN, KZ), and its lines are told CURRENT_PLAN_UNKNOWN. Every request carries a fixed request id, so
loading twice changes nothing.
"""

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Final, Literal

import grpc
from google.protobuf import timestamp_pb2
from google.type import money_pb2

from crm.common.v1 import common_pb2
from crm.customer.v1 import customer_pb2, customer_service_pb2, usage_pb2
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from crm.offers.v1 import catalog_pb2, coverage_pb2, offers_service_pb2, plan_change_pb2, recommendation_pb2
from crm.offers.v1.offers_service_pb2_grpc import OfferServiceStub
from tools.demo_data import COUNTRIES, LEGACY_PLAN_CLOSED, LoadedCustomer
from tools.demo_network import areas_of
from tools.local_gateway import LocalGateway

if TYPE_CHECKING:
    # mypy-protobuf's types of the stubs on an asyncio channel; they exist for type checkers only.
    from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceAsyncStub
    from crm.offers.v1.offers_service_pb2_grpc import OfferServiceAsyncStub

MARKETING = "demo-marketing"
"""Marketing's batch identity that fills the catalog and the coverage."""
MARKETING_ROLES = ("marketing",)
MARKETS = {"UZ": "UZS", "UA": "UAH", "VN": "VND"}
"""The demo markets the offers service sells in, with their currencies."""
MINOR_DIGITS = {"UZS": 2, "UAH": 2, "VND": 0}
CALL_TIMEOUT_SECONDS = 30.0
"""Each call's deadline: room for a busy machine, where a statement that ran out of time is sent again."""
MAX_ADVICE_TRIES = 40
"""Lines asked for advice at most while looking for one that saves by switching."""

Allowance = int | Literal["unlimited"]
MONTHLY = catalog_pb2.PRICE_MODEL_MONTHLY
PER_DAY = catalog_pb2.PRICE_MODEL_PER_CALENDAR_DAY
PER_DAY_OF_USE = catalog_pb2.PRICE_MODEL_PER_DAY_OF_USE
NEEDS_4G = usage_pb2.RADIO_TECHNOLOGY_4G
NEEDS_5G = usage_pb2.RADIO_TECHNOLOGY_5G


@dataclass(frozen=True)
class Rates:
    """What one unit beyond an allowance costs, in the market's main unit ("0.20" hryvnia)."""

    on_net_minute: str = "0"
    off_net_minute: str = "0"
    sms: str = "0"
    data_mb: str = "0"


@dataclass(frozen=True)
class DemoOffering:
    """A plan or bundle of the demo catalog."""

    offering_id: str
    market: str
    display_name: str
    description: str
    price_model: catalog_pb2.PriceModel
    price: str
    """In the market's main unit, e.g. "49000" som or "5.50" hryvnia."""
    kind: catalog_pb2.OfferingKind = catalog_pb2.OFFERING_KIND_TARIFF_PLAN
    on_net_minutes: Allowance = 0
    off_net_minutes: Allowance = 0
    sms: Allowance = 0
    data_mb: Allowance = 0
    overage: Rates = Rates()
    required_technology: usage_pb2.RadioTechnology = usage_pb2.RADIO_TECHNOLOGY_UNSPECIFIED
    regions: tuple[str, ...] = ()
    promoted: bool = False
    on_sale: tuple[datetime, datetime] | None = None
    """When it took new lines, for a plan closed since; the lines on it keep it."""

    @property
    def name(self) -> str:
        """`plans/{id}` or `bundles/{id}`."""
        collection = "plans" if self.kind == catalog_pb2.OFFERING_KIND_TARIFF_PLAN else "bundles"
        return f"{collection}/{self.offering_id}"


U: Final = "unlimited"
BUNDLE = catalog_pb2.OFFERING_KIND_ADD_ON_BUNDLE
OLD_PLAN = (datetime(2012, 1, 1, tzinfo=UTC), datetime.combine(LEGACY_PLAN_CLOSED, time(), UTC))
"""When the old plans (tools.demo_data's legacy plans) took new lines."""

CATALOG = (
    # Uzbekistan, in som.
    DemoOffering(
        "uz-start-5gb",
        "UZ",
        "Start 5 GB",
        "Tarmoq ichida cheksiz qoʻngʻiroqlar, boshqa tarmoqlarga 300 daqiqa va oyiga 5 GB.",
        MONTHLY,
        "49000",
        on_net_minutes=U,
        off_net_minutes=300,
        sms=100,
        data_mb=5_120,
        overage=Rates(off_net_minute="150", sms="80", data_mb="10"),
    ),
    DemoOffering(
        "uz-comfort-20gb",
        "UZ",
        "Komfort 20 GB",
        "Tarmoq ichida cheksiz qoʻngʻiroqlar, boshqa tarmoqlarga 800 daqiqa va oyiga 20 GB.",
        MONTHLY,
        "89000",
        on_net_minutes=U,
        off_net_minutes=800,
        sms=300,
        data_mb=20_480,
        overage=Rates(off_net_minute="120", sms="80", data_mb="8"),
    ),
    DemoOffering(
        "uz-unlim-max",
        "UZ",
        "Unlim Max",
        "Hammasi cheksiz: qoʻngʻiroqlar, SMS va mobil internet.",
        MONTHLY,
        "179000",
        on_net_minutes=U,
        off_net_minutes=U,
        sms=U,
        data_mb=U,
        promoted=True,
    ),
    DemoOffering(
        "uz-biznes-50gb",
        "UZ",
        "Biznes 50 GB",
        "Kompaniyalar uchun: tarmoq ichida cheksiz, boshqa tarmoqlarga 2 000 daqiqa, 50 GB.",
        MONTHLY,
        "149000",
        on_net_minutes=U,
        off_net_minutes=2_000,
        sms=500,
        data_mb=51_200,
        overage=Rates(off_net_minute="100", sms="60", data_mb="6"),
    ),
    DemoOffering(
        "uz-kunlik",
        "UZ",
        "Kunlik",
        "Faqat liniyadan foydalanilgan kunlar uchun 2 900 soʻm; oyiga tarmoq ichida 300, boshqa tarmoqlarga"
        " 100 daqiqa va 3 GB.",
        PER_DAY_OF_USE,
        "2900",
        on_net_minutes=300,
        off_net_minutes=100,
        sms=50,
        data_mb=3_072,
        overage=Rates(on_net_minute="50", off_net_minute="150", sms="80", data_mb="10"),
    ),
    DemoOffering(
        "uz-har-kuni-10gb",
        "UZ",
        "Har kuni 10 GB",
        "Kuniga 1 900 soʻm: tarmoq ichida cheksiz, boshqa tarmoqlarga 400 daqiqa va oyiga 10 GB.",
        PER_DAY,
        "1900",
        on_net_minutes=U,
        off_net_minutes=400,
        sms=100,
        data_mb=10_240,
        overage=Rates(off_net_minute="150", sms="80", data_mb="10"),
    ),
    DemoOffering(
        "uz-vodiy-15gb",
        "UZ",
        "Vodiy 15 GB",
        "Fargʻona vodiysi uchun: tarmoq ichida cheksiz, boshqa tarmoqlarga 500 daqiqa va 15 GB.",
        MONTHLY,
        "59000",
        on_net_minutes=U,
        off_net_minutes=500,
        sms=200,
        data_mb=15_360,
        overage=Rates(off_net_minute="150", sms="80", data_mb="10"),
        regions=("Fargʻona viloyati", "Andijon viloyati", "Namangan viloyati"),
    ),
    DemoOffering(
        "uz-5g-tezkor",
        "UZ",
        "5G Tezkor 60 GB",
        "Toshkentda 5G tezligida 60 GB, tarmoq ichida cheksiz qoʻngʻiroqlar.",
        MONTHLY,
        "129000",
        on_net_minutes=U,
        off_net_minutes=1_000,
        sms=300,
        data_mb=61_440,
        overage=Rates(off_net_minute="120", sms="80", data_mb="6"),
        required_technology=NEEDS_5G,
    ),
    DemoOffering(
        "uz-klassik-2012",
        "UZ",
        "Klassik (2012)",
        "2012-yilgi tarif: tarmoq ichida 300, boshqa tarmoqlarga 100 daqiqa, 1 GB; 2014-yildan yangi"
        " liniyalarga yopiq.",
        MONTHLY,
        "119000",
        on_net_minutes=300,
        off_net_minutes=100,
        sms=100,
        data_mb=1_024,
        overage=Rates(on_net_minute="90", off_net_minute="250", sms="100", data_mb="20"),
        on_sale=OLD_PLAN,
    ),
    DemoOffering(
        "uz-video-30gb",
        "UZ",
        "Video 30 GB",
        "YouTube, Instagram va Kinopoisk uchun HD sifatda 30 GB; liniyadan foydalaniladigan joyda 4G kerak.",
        MONTHLY,
        "35000",
        kind=BUNDLE,
        data_mb=30_720,
        required_technology=NEEDS_4G,
    ),
    DemoOffering(
        "uz-daqiqa-500",
        "UZ",
        "500 daqiqa",
        "Boshqa tarmoqlarga oyiga qoʻshimcha 500 daqiqa.",
        MONTHLY,
        "15000",
        kind=BUNDLE,
        off_net_minutes=500,
    ),
    # Ukraine, in hryvnia.
    DemoOffering(
        "ua-smart-10gb",
        "UA",
        "Смарт 10 ГБ",
        "Безлімітні дзвінки в мережі, 300 хвилин на інші мережі та 10 ГБ на місяць.",
        MONTHLY,
        "200",
        on_net_minutes=U,
        off_net_minutes=300,
        sms=100,
        data_mb=10_240,
        overage=Rates(off_net_minute="2.50", sms="1.50", data_mb="0.05"),
    ),
    DemoOffering(
        "ua-super-unlim",
        "UA",
        "Супер Безлім",
        "Усе без обмежень: дзвінки, SMS та мобільний інтернет.",
        MONTHLY,
        "350",
        on_net_minutes=U,
        off_net_minutes=U,
        sms=U,
        data_mb=U,
        promoted=True,
    ),
    DemoOffering(
        "ua-senior-basic",
        "UA",
        "Пенсійний",
        "Безлімітні дзвінки в мережі, 100 хвилин на інші мережі та 2 ГБ.",
        MONTHLY,
        "100",
        on_net_minutes=U,
        off_net_minutes=100,
        sms=50,
        data_mb=2_048,
        overage=Rates(off_net_minute="2.50", sms="1.50", data_mb="0.05"),
    ),
    DemoOffering(
        "ua-business-pro",
        "UA",
        "Бізнес Про",
        "Для компаній: безлімітні дзвінки в мережі, 3 000 хвилин на інші мережі, 40 ГБ.",
        MONTHLY,
        "450",
        on_net_minutes=U,
        off_net_minutes=3_000,
        sms=500,
        data_mb=40_960,
        overage=Rates(off_net_minute="1.50", sms="1", data_mb="0.03"),
    ),
    DemoOffering(
        "ua-shchodnia-6gb",
        "UA",
        "Щодня 6 ГБ",
        "5,50 грн на день: безлімітні дзвінки в мережі, 200 хвилин на інші мережі та 6 ГБ на місяць.",
        PER_DAY,
        "5.50",
        on_net_minutes=U,
        off_net_minutes=200,
        sms=50,
        data_mb=6_144,
        overage=Rates(off_net_minute="2.50", sms="1.50", data_mb="0.05"),
    ),
    DemoOffering(
        "ua-za-den",
        "UA",
        "За день",
        "9 грн лише за дні, коли лінією користуються; 300 хвилин у мережі, 60 на інші мережі та 3 ГБ на місяць.",
        PER_DAY_OF_USE,
        "9",
        on_net_minutes=300,
        off_net_minutes=60,
        sms=30,
        data_mb=3_072,
        overage=Rates(on_net_minute="0.50", off_net_minute="2.50", sms="1.50", data_mb="0.05"),
    ),
    DemoOffering(
        "ua-classic-2012",
        "UA",
        "Класичний (2012)",
        "Тариф 2012 року: 200 хвилин у мережі, 50 на інші мережі, 500 МБ; закритий для нових ліній з 2014 року.",
        MONTHLY,
        "250",
        on_net_minutes=200,
        off_net_minutes=50,
        sms=50,
        data_mb=500,
        overage=Rates(on_net_minute="1", off_net_minute="3", sms="1.50", data_mb="0.10"),
        on_sale=OLD_PLAN,
    ),
    DemoOffering(
        "ua-video-20gb",
        "UA",
        "Відео 20 ГБ",
        "20 ГБ для YouTube, Megogo та Netflix; потрібен 4G там, де користуються лінією.",
        MONTHLY,
        "100",
        kind=BUNDLE,
        data_mb=20_480,
        required_technology=NEEDS_4G,
    ),
    DemoOffering(
        "ua-hvylyny-300",
        "UA",
        "300 хвилин",
        "Ще 300 хвилин на інші мережі на місяць.",
        MONTHLY,
        "60",
        kind=BUNDLE,
        off_net_minutes=300,
    ),
    # Vietnam, in dong.
    DemoOffering(
        "vn-st90-daily",
        "VN",
        "ST90 ngày",
        "3.000 đồng mỗi ngày, 1 GB mỗi ngày (30 GB một tháng); gọi và nhắn tin tính theo phút.",
        PER_DAY,
        "3000",
        data_mb=30_720,
        overage=Rates(on_net_minute="1190", off_net_minute="1390", sms="350", data_mb="10"),
    ),
    DemoOffering(
        "vn-5g-150",
        "VN",
        "5G150",
        "150.000 đồng một tháng: 120 GB tốc độ 5G, 1.000 phút nội mạng, 50 phút ngoại mạng.",
        MONTHLY,
        "150000",
        on_net_minutes=1_000,
        off_net_minutes=50,
        data_mb=122_880,
        overage=Rates(on_net_minute="1190", off_net_minute="1390", sms="350", data_mb="10"),
        required_technology=NEEDS_5G,
    ),
    DemoOffering(
        "vn-student-70",
        "VN",
        "Sinh viên 70",
        "Gói sinh viên: 15 GB, 100 phút nội mạng, 20 phút ngoại mạng mỗi tháng.",
        MONTHLY,
        "70000",
        on_net_minutes=100,
        off_net_minutes=20,
        sms=20,
        data_mb=15_360,
        overage=Rates(on_net_minute="1190", off_net_minute="1390", sms="350", data_mb="10"),
    ),
    DemoOffering(
        "vn-business-300",
        "VN",
        "Doanh nghiệp 300",
        "Cho doanh nghiệp: gọi nội mạng không giới hạn, 300 phút ngoại mạng, 60 GB.",
        MONTHLY,
        "300000",
        on_net_minutes=U,
        off_net_minutes=300,
        sms=100,
        data_mb=61_440,
        overage=Rates(off_net_minute="990", sms="290", data_mb="8"),
    ),
    DemoOffering(
        "vn-ngay-dung",
        "VN",
        "Ngày dùng",
        "8.000 đồng chỉ cho những ngày có dùng; 10 GB, 50 phút nội mạng, 10 phút ngoại mạng mỗi tháng.",
        PER_DAY_OF_USE,
        "8000",
        on_net_minutes=50,
        off_net_minutes=10,
        sms=10,
        data_mb=10_240,
        overage=Rates(on_net_minute="1190", off_net_minute="1390", sms="350", data_mb="10"),
    ),
    DemoOffering(
        "vn-max-200",
        "VN",
        "MAX200",
        "Không giới hạn: gọi, nhắn tin và dữ liệu.",
        MONTHLY,
        "200000",
        on_net_minutes=U,
        off_net_minutes=U,
        sms=U,
        data_mb=U,
        promoted=True,
    ),
    DemoOffering(
        "vn-tomato-2012",
        "VN",
        "Tomato (2012)",
        "Gói cước 2012: 100 phút nội mạng, 20 phút ngoại mạng, 1 GB; ngừng nhận thuê bao mới từ 2014.",
        MONTHLY,
        "159000",
        on_net_minutes=100,
        off_net_minutes=20,
        sms=50,
        data_mb=1_024,
        overage=Rates(on_net_minute="1190", off_net_minute="1390", sms="350", data_mb="30"),
        on_sale=OLD_PLAN,
    ),
    DemoOffering(
        "vn-video-30gb",
        "VN",
        "Gói Video 30 GB",
        "30 GB xem YouTube, TikTok và TV360; cần 4G nơi sử dụng.",
        MONTHLY,
        "50000",
        kind=BUNDLE,
        data_mb=30_720,
        required_technology=NEEDS_4G,
    ),
    DemoOffering(
        "vn-phut-200",
        "VN",
        "Gói 200 phút",
        "Thêm 200 phút gọi ngoại mạng mỗi tháng.",
        MONTHLY,
        "30000",
        kind=BUNDLE,
        off_net_minutes=200,
    ),
)
"""The demo catalog: what demo lines are on (tools.demo_data's plans) and what they may move to."""


@dataclass(frozen=True)
class TariffAdviceSample:
    """A line whose own usage costs less on another plan, for the example calls."""

    subscription: str
    customer: str
    current_plan: str
    """The current plan's name for people."""
    recommended_plan: str
    """The recommended plan's name for people."""
    monthly_saving: str
    """In words, e.g. "63 000 UZS"."""


def marketing_channel(gateway: LocalGateway) -> grpc.aio.Channel:
    """A channel to the gateway as marketing's batch identity."""
    return gateway.as_employee(MARKETING, MARKETING_ROLES)


async def load_catalog(gateway: LocalGateway) -> tuple[int, int]:
    """Creates the demo catalog and replaces the coverage of each demo market; returns how many
    offerings the catalog has and how many coverage areas the offers service holds."""
    async with marketing_channel(gateway) as channel:
        stub = OfferServiceStub(channel)
        for offering in CATALOG:
            await _create(stub, offering)
        areas = 0
        for market in MARKETS:
            coverage = await stub.ReplaceCoverage(
                offers_service_pb2.ReplaceCoverageRequest(
                    market=market, areas=_coverage_areas(market), request_id=f"demo-coverage-{market.lower()}"
                ),
                timeout=CALL_TIMEOUT_SECONDS,
            )
            areas = int(coverage.area_count)
    return len(CATALOG), areas


async def holds_catalog(gateway: LocalGateway) -> bool:
    """Whether the offers service behind `gateway` holds any offering."""
    async with marketing_channel(gateway) as channel:
        page = await OfferServiceStub(channel).ListProductOfferings(
            offers_service_pb2.ListProductOfferingsRequest(page_size=1), timeout=CALL_TIMEOUT_SECONDS
        )
    return len(page.product_offerings) > 0


async def advise_old_plan_lines(
    gateway: LocalGateway, customers: Sequence[LoadedCustomer]
) -> tuple[int, TariffAdviceSample | None]:
    """Asks for advice on lines still on an old plan (then on any line of a demo market) until two
    save by switching: the first is the sample for the example calls, the second's customer takes the
    advice in the app. Returns the plan changes accepted and the sample."""
    async with marketing_channel(gateway) as channel:
        found = await _advice_that_saves(OfferServiceStub(channel), CustomerServiceStub(channel), customers, wanted=2)
    for customer, advice in found[1:]:
        await _accept_in_the_app(gateway, customer, advice)
    return len(found[1:]), _sample(*found[0]) if found else None


async def find_sample(gateway: LocalGateway, customers: Sequence[LoadedCustomer]) -> TariffAdviceSample | None:
    """A line of the system whose advice saves by switching, for the example calls."""
    async with marketing_channel(gateway) as channel:
        found = await _advice_that_saves(OfferServiceStub(channel), CustomerServiceStub(channel), customers, wanted=1)
    return _sample(*found[0]) if found else None


async def _advice_that_saves(
    offers: "OfferServiceAsyncStub",
    customer_service: "CustomerServiceAsyncStub",
    customers: Sequence[LoadedCustomer],
    *,
    wanted: int,
) -> list[tuple[customer_pb2.Customer, recommendation_pb2.TariffRecommendation]]:
    """Up to `wanted` lines whose advice is to switch with a saving, asking at most MAX_ADVICE_TRIES lines."""
    found: list[tuple[customer_pb2.Customer, recommendation_pb2.TariffRecommendation]] = []
    tries = 0
    async for customer, line in _candidate_lines(customer_service, customers):
        tries += 1
        if tries > MAX_ADVICE_TRIES or len(found) == wanted:
            break
        advice = await offers.RecommendTariff(
            offers_service_pb2.RecommendTariffRequest(subscription=line.name), timeout=CALL_TIMEOUT_SECONDS
        )
        if _saves(advice):
            found.append((customer, advice))
    return found


async def _create(stub: "OfferServiceAsyncStub", offering: DemoOffering) -> None:
    try:
        await stub.CreateProductOffering(
            offers_service_pb2.CreateProductOfferingRequest(
                product_offering=_offering_message(offering),
                product_offering_id=offering.offering_id,
                request_id=f"demo-offering-{offering.offering_id}",
            ),
            timeout=CALL_TIMEOUT_SECONDS,
        )
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise


def _offering_message(offering: DemoOffering) -> catalog_pb2.ProductOffering:
    currency = MARKETS[offering.market]
    allowances = catalog_pb2.Allowances()
    for item in ("on_net_minutes", "off_net_minutes", "sms", "data_mb"):
        amount: Allowance = getattr(offering, item)
        if amount == "unlimited":
            setattr(allowances, f"unlimited_{'data' if item == 'data_mb' else item}", True)
        else:
            setattr(allowances, item, amount)
    rates = offering.overage
    message = catalog_pb2.ProductOffering(
        kind=offering.kind,
        display_name=offering.display_name,
        description=offering.description,
        market=offering.market,
        price_model=offering.price_model,
        price=_money(offering.price, currency),
        allowances=allowances,
        overage_rates=catalog_pb2.OverageRates(
            on_net_minute=_money(rates.on_net_minute, currency),
            off_net_minute=_money(rates.off_net_minute, currency),
            sms=_money(rates.sms, currency),
            data_mb=_money(rates.data_mb, currency),
        ),
        required_technology=offering.required_technology,
        regions=offering.regions,
        promoted=offering.promoted,
    )
    if offering.on_sale is not None:
        message.start_time.CopyFrom(_timestamp(offering.on_sale[0]))
        message.end_time.CopyFrom(_timestamp(offering.on_sale[1]))
    return message


def _coverage_areas(market: str) -> list[coverage_pb2.CoverageArea]:
    return [
        coverage_pb2.CoverageArea(area=area.name, market=market, technologies=area.technologies)
        for area in areas_of(market)
    ]


async def _candidate_lines(
    customer_service: "CustomerServiceAsyncStub", customers: Sequence[LoadedCustomer]
) -> AsyncIterator[tuple[customer_pb2.Customer, customer_pb2.Subscription]]:
    """Active lines of active customers of the demo markets, those on an old plan first; a customer
    listed without lines has them read."""
    legacy_plans = {country.legacy_plan for country in COUNTRIES}
    active = [
        entry
        for entry in customers
        if entry.customer.status == customer_pb2.CUSTOMER_STATUS_ACTIVE and _market_of(entry.customer) in MARKETS
    ]
    later: list[tuple[customer_pb2.Customer, customer_pb2.Subscription]] = []
    for entry in active:
        lines = entry.lines or await _lines_of(customer_service, entry.customer.name)
        for line in lines:
            if line.status not in (
                customer_pb2.SUBSCRIPTION_STATUS_ACTIVE,
                customer_pb2.SUBSCRIPTION_STATUS_UNSPECIFIED,
            ):
                continue
            if line.tariff_plan_id in legacy_plans:
                yield entry.customer, line
            else:
                later.append((entry.customer, line))
    for customer, line in later:
        yield customer, line


async def _lines_of(stub: "CustomerServiceAsyncStub", customer: str) -> Sequence[customer_pb2.Subscription]:
    page = await stub.ListSubscriptions(
        customer_service_pb2.ListSubscriptionsRequest(parent=customer, page_size=50), timeout=CALL_TIMEOUT_SECONDS
    )
    return page.subscriptions


async def _accept_in_the_app(
    gateway: LocalGateway, customer: customer_pb2.Customer, advice: recommendation_pb2.TariffRecommendation
) -> None:
    """The customer takes the advice in the app, with their own token: the change is recorded with
    their acceptance and applied to the line by the offers service."""
    async with gateway.as_customer(customer.name) as channel:
        await OfferServiceStub(channel).CreatePlanChange(
            offers_service_pb2.CreatePlanChangeRequest(
                plan_change=plan_change_pb2.PlanChange(
                    subscription=advice.subscription,
                    to_plan=advice.recommended_plan,
                    origin=plan_change_pb2.PLAN_CHANGE_ORIGIN_RECOMMENDATION,
                    recommendation=advice.name,
                    acceptance=plan_change_pb2.Acceptance(
                        acceptor_kind=plan_change_pb2.ACCEPTOR_KIND_CUSTOMER, channel=common_pb2.CHANNEL_APP
                    ),
                ),
                request_id=f"demo-plan-change-{advice.subscription.rsplit('/', 1)[-1]}",
            ),
            timeout=CALL_TIMEOUT_SECONDS,
        )


def _saves(advice: recommendation_pb2.TariffRecommendation) -> bool:
    saving = advice.monthly_saving
    return advice.outcome == recommendation_pb2.RECOMMENDATION_OUTCOME_SWITCH and (saving.units > 0 or saving.nanos > 0)


def _sample(customer: customer_pb2.Customer, advice: recommendation_pb2.TariffRecommendation) -> TariffAdviceSample:
    names = {option.plan: option.display_name for option in advice.options}
    current = names.get(advice.current_plan) or next(
        (offering.display_name for offering in CATALOG if offering.name == advice.current_plan), advice.current_plan
    )
    return TariffAdviceSample(
        subscription=advice.subscription,
        customer=customer.name,
        current_plan=current,
        recommended_plan=names.get(advice.recommended_plan, advice.recommended_plan),
        monthly_saving=_money_words(advice.monthly_saving),
    )


def _market_of(customer: customer_pb2.Customer) -> str:
    return next((m.postal_address.country_code for m in customer.contact_media if m.HasField("postal_address")), "")


def _money(amount: str, currency: str) -> money_pb2.Money:
    value = Decimal(amount)
    units = int(value)
    return money_pb2.Money(currency_code=currency, units=units, nanos=int((value - units) * 1_000_000_000))


def _money_words(money: money_pb2.Money) -> str:
    """As people read it, e.g. "63 000 UZS" or "27.50 UAH"."""
    digits = MINOR_DIGITS[money.currency_code]
    minor = money.nanos // 10 ** (9 - digits) if digits else 0
    return f"{money.units:,}".replace(",", " ") + (f".{minor:0{digits}d}" if minor else "") + f" {money.currency_code}"


def _timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp
