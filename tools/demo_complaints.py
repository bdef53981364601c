"""Demo complaints for a local run: the departments that work tickets, each with the business
calendar of where it sits (time zone, opening hours, its country's public holidays with the
company's own days off and working days), an SLA plan and its agents; routing rules by category,
channel, segment and region; and tickets of the demo customers in every state, filed through every
channel the contract has (app, web, call centre, and a retail shop with its client certificate).

Each step calls as the one who does it in life: the support supervisor (`demo-supervisor`) sets up
the departments and rules and rejects a ticket that is not a complaint; agents work the tickets
assigned to them under their own names; customers file, cancel, accept or reject resolutions and
answer the satisfaction survey in the app or on the web with their own tokens; the demo retail chain
files a handset complaint at its counter with its certificate; a call-centre agent files what a
customer says on the phone.

Ukraine's public holidays are not listed while martial law is in force, so its contact centre adds
the days it closes as company days; the Uzbek contact centre works the extra days off a presidential
decree adds. Every request carries a fixed request id, so loading twice changes nothing.
"""

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

import grpc
import holidays
from google.type import date_pb2, dayofweek_pb2, timeofday_pb2

from crm.common.v1 import common_pb2
from crm.complaints.v1 import complaint_pb2, complaint_service_pb2, departments_pb2
from crm.complaints.v1.complaint_service_pb2_grpc import ComplaintServiceStub
from crm.customer.v1 import customer_pb2, customer_service_pb2
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from crm.loyalty.v1 import loyalty_service_pb2
from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceStub
from tools.credentials import DEMO_RETAILER
from tools.demo_data import COUNTRIES, DEMO_PARTNER, LoadedCustomer, phone_of
from tools.local_gateway import LocalGateway

if TYPE_CHECKING:
    # mypy-protobuf's types of the stubs on an asyncio channel; they exist for type checkers only.
    from crm.complaints.v1.complaint_service_pb2_grpc import ComplaintServiceAsyncStub

SUPERVISOR = "demo-supervisor"
"""The support supervisor who sets up departments, agents and routing."""
SUPERVISOR_ROLES = ("supervisor",)
AGENT_ROLES = ("agent",)
CALL_TIMEOUT_SECONDS = 30.0
"""Each call's deadline: room for a busy machine, where a statement that ran out of time is sent again."""
ACCOUNT_WAIT_SECONDS = 60.0
"""Longest a goodwill resolution waits for the customer's loyalty account to be opened from the feed."""

P = complaint_pb2
LOW, MEDIUM, HIGH, URGENT = P.PRIORITY_LOW, P.PRIORITY_MEDIUM, P.PRIORITY_HIGH, P.PRIORITY_URGENT
APP, WEB = common_pb2.CHANNEL_APP, common_pb2.CHANNEL_WEB
CALL_CENTRE, RETAIL_SHOP = common_pb2.CHANNEL_CALL_CENTRE, common_pb2.CHANNEL_RETAIL_SHOP
SELF_SERVICE = frozenset({APP, WEB})
D = dayofweek_pb2
WEEKDAYS = (D.MONDAY, D.TUESDAY, D.WEDNESDAY, D.THURSDAY, D.FRIDAY)
SATURDAY, SUNDAY = D.SATURDAY, D.SUNDAY
EVERY_DAY = (*WEEKDAYS, SATURDAY, SUNDAY)

Targets = dict[complaint_pb2.Priority, tuple[int, int]]
"""First-response and resolution targets in business minutes, per priority."""
CONTACT_CENTRE_TARGETS: Targets = {LOW: (480, 4320), MEDIUM: (240, 2160), HIGH: (60, 960), URGENT: (30, 240)}
NETWORK_TARGETS: Targets = {LOW: (240, 2880), MEDIUM: (60, 1440), HIGH: (30, 480), URGENT: (15, 120)}
BACK_OFFICE_TARGETS: Targets = {LOW: (960, 7200), MEDIUM: (480, 4320), HIGH: (240, 1440), URGENT: (60, 480)}


@dataclass(frozen=True)
class DemoAgent:
    """An agent; the id is also the subject of the agent's token."""

    agent_id: str
    display_name: str
    senior: bool = False
    available: bool = True


@dataclass(frozen=True)
class Opening:
    """Opening hours on some weekdays, local time "HH:MM"; "24:00" is the end of the day."""

    days: tuple[dayofweek_pb2.DayOfWeek, ...]
    opens: str
    closes: str


@dataclass(frozen=True)
class DemoDepartment:
    """A department of the demo operator."""

    department_id: str
    display_name: str
    time_zone: str
    country_code: str
    opening: tuple[Opening, ...]
    targets: Targets
    agents: tuple[DemoAgent, ...]
    policy: departments_pb2.AssignmentPolicy = departments_pb2.ASSIGNMENT_POLICY_ROUND_ROBIN
    company_holidays: tuple[date, ...] = ()
    company_working_days: tuple[date, ...] = ()


def _yearly(month_days: Sequence[tuple[int, int]], years: Sequence[int]) -> tuple[date, ...]:
    return tuple(date(year, month, day) for year in years for month, day in month_days)


def _decree_days_off(years: Sequence[int]) -> tuple[date, ...]:
    """Uzbekistan's extra days off by presidential decree, which the holiday list names as such."""
    listed = holidays.country_holidays("UZ", years=list(years))
    return tuple(sorted(day for day, name in listed.items() if "decree" in name.lower()))


_YEARS = (datetime.now(UTC).year, datetime.now(UTC).year + 1)

DEPARTMENTS = (
    DemoDepartment(
        "uz-contact-centre",
        "Aloqa markazi, Toshkent",
        "Asia/Tashkent",
        "UZ",
        (Opening(WEEKDAYS, "08:00", "20:00"), Opening((SATURDAY,), "09:00", "18:00")),
        CONTACT_CENTRE_TARGETS,
        (
            DemoAgent("dilnoza-karimova", "Dilnoza Karimova"),
            DemoAgent("jasur-toxtayev", "Jasur Toʻxtayev", senior=True),
            DemoAgent("malika-yusupova", "Malika Yusupova", available=False),
            DemoAgent("sardor-aliyev", "Sardor Aliyev"),
        ),
        company_working_days=_decree_days_off(_YEARS),
    ),
    DemoDepartment(
        "ua-contact-centre",
        "Контакт-центр, Київ",
        "Europe/Kyiv",
        "UA",
        (Opening(WEEKDAYS, "08:00", "20:00"), Opening((SATURDAY, SUNDAY), "09:00", "18:00")),
        CONTACT_CENTRE_TARGETS,
        (
            DemoAgent("olena-kovalenko", "Олена Коваленко", senior=True),
            DemoAgent("andrii-melnyk", "Андрій Мельник"),
            DemoAgent("iryna-bondarenko", "Ірина Бондаренко"),
        ),
        policy=departments_pb2.ASSIGNMENT_POLICY_LEAST_BUSY,
        # New Year, Constitution Day, Independence Day, Christmas.
        company_holidays=_yearly(((1, 1), (6, 28), (8, 24), (12, 25)), _YEARS),
    ),
    DemoDepartment(
        "vn-contact-centre",
        "Trung tâm chăm sóc khách hàng, Hà Nội",
        "Asia/Ho_Chi_Minh",
        "VN",
        # Closed over lunch.
        (Opening((*WEEKDAYS, SATURDAY), "08:00", "12:00"), Opening((*WEEKDAYS, SATURDAY), "13:30", "17:30")),
        CONTACT_CENTRE_TARGETS,
        (
            DemoAgent("nguyen-thi-lan", "Nguyễn Thị Lan", senior=True),
            DemoAgent("tran-van-hung", "Trần Văn Hùng"),
            DemoAgent("le-minh-chau", "Lê Minh Châu"),
        ),
    ),
    DemoDepartment(
        "ru-contact-centre",
        "Контакт-центр, Москва",
        "Europe/Moscow",
        "RU",
        (Opening(WEEKDAYS, "09:00", "21:00"), Opening((SATURDAY,), "10:00", "18:00")),
        CONTACT_CENTRE_TARGETS,
        (
            DemoAgent("anna-smirnova", "Анна Смирнова", senior=True),
            DemoAgent("dmitrii-kuznetsov", "Дмитрий Кузнецов"),
        ),
    ),
    DemoDepartment(
        "network-operations",
        "Network operations centre",
        "Asia/Tashkent",
        "",
        (Opening(EVERY_DAY, "00:00", "24:00"),),
        NETWORK_TARGETS,
        (
            DemoAgent("bekzod-rahimov", "Bekzod Rahimov", senior=True),
            DemoAgent("oleksii-shevchenko", "Олексій Шевченко"),
            DemoAgent("pham-quoc-bao", "Phạm Quốc Bảo"),
        ),
        policy=departments_pb2.ASSIGNMENT_POLICY_LEAST_BUSY,
    ),
    DemoDepartment(
        "billing-disputes",
        "Billing disputes (back office)",
        "Asia/Tashkent",
        "UZ",
        (Opening(WEEKDAYS, "09:00", "18:00"),),
        BACK_OFFICE_TARGETS,
        (
            DemoAgent("gulnora-saidova", "Gulnora Saidova", senior=True),
            DemoAgent("timur-abdullayev", "Timur Abdullayev"),
        ),
    ),
    DemoDepartment(
        "retail-partners",
        "Retail partner desk",
        "Asia/Tashkent",
        "UZ",
        (Opening((*WEEKDAYS, SATURDAY), "10:00", "20:00"),),
        CONTACT_CENTRE_TARGETS,
        (DemoAgent("nodira-xasanova", "Nodira Xasanova", senior=True), DemoAgent("aziz-qodirov", "Aziz Qodirov")),
    ),
)
"""The demo operator's departments besides customer care."""
DEFAULT_DEPARTMENT = "customer-care"
"""Where tickets go when no rule matches (the service's migrations create it); it gets agents here."""
DEFAULT_DEPARTMENT_AGENTS = (
    DemoAgent("shahlo-ergasheva", "Shahlo Ergasheva", senior=True),
    DemoAgent("rustam-nazarov", "Rustam Nazarov"),
)


@dataclass(frozen=True)
class DemoRule:
    """A routing rule; ties between rules of as many criteria go by id, so the desks' ids sort first."""

    rule_id: str
    department: str
    priority: complaint_pb2.Priority
    category: complaint_pb2.ComplaintCategory = P.COMPLAINT_CATEGORY_UNSPECIFIED
    channel: common_pb2.Channel = common_pb2.CHANNEL_UNSPECIFIED
    segment: str = ""
    region: str = ""


ROUTING_RULES = (
    DemoRule("desk-billing-disputes", "billing-disputes", MEDIUM, category=P.COMPLAINT_CATEGORY_BILLING_DISPUTE),
    DemoRule("desk-network-faults", "network-operations", HIGH, category=P.COMPLAINT_CATEGORY_NETWORK),
    # Someone on the phone about an outage is urgent.
    DemoRule(
        "desk-network-outage-calls",
        "network-operations",
        URGENT,
        category=P.COMPLAINT_CATEGORY_NETWORK,
        channel=CALL_CENTRE,
    ),
    DemoRule("desk-shop-service", "retail-partners", MEDIUM, category=P.COMPLAINT_CATEGORY_SHOP_SERVICE),
    DemoRule(
        "desk-handsets-at-shops", "retail-partners", HIGH, category=P.COMPLAINT_CATEGORY_DEVICE, channel=RETAIL_SHOP
    ),
    # A customer likely to leave who complains about a tariff goes to retention.
    DemoRule(
        "desk-retention",
        "customer-care",
        HIGH,
        category=P.COMPLAINT_CATEGORY_TARIFF_CHANGE,
        segment="segments/churn-risk-high",
    ),
    *(
        DemoRule(
            f"region-{country.code.lower()}-{number:02d}",
            f"{country.code.lower()}-contact-centre",
            MEDIUM,
            region=region.name,
        )
        for country in COUNTRIES
        for number, region in enumerate(country.regions, start=1)
    ),
)
"""Specialised desks by category and channel; everything else to the contact centre of the customer's market."""


@dataclass(frozen=True)
class Step:
    """One thing done to a ticket: `verb` (start, note, reply, await, hold, resolve, accept,
    reopen, satisfaction, reject, cancel, escalate, merge, link) with its words, or the key of the
    ticket it merges into or links to."""

    verb: str
    text: str = ""
    points: int = 0
    """Goodwill points of a resolution."""
    code: str = ""
    """A resolution's code."""
    csat: int = 0
    nps: int = 0


@dataclass(frozen=True)
class DemoTicket:
    """A ticket of the demo and what happens to it."""

    key: str
    country: str
    channel: common_pb2.Channel
    category: complaint_pb2.ComplaintCategory
    type: complaint_pb2.ComplaintType
    description: str
    steps: tuple[Step, ...] = ()
    severity: complaint_pb2.Severity = P.SEVERITY_MINOR
    about_line: bool = False
    at_partner: bool = False
    """Filed at the demo retail chain's counter, for a customer the chain onboarded."""
    same_customer_as: str = ""
    """The key of the ticket whose customer files this one too."""


COMPLAINT, REQUEST, INCIDENT = P.COMPLAINT_TYPE_COMPLAINT, P.COMPLAINT_TYPE_REQUEST, P.COMPLAINT_TYPE_INCIDENT

TICKETS = (
    DemoTicket(
        "uz-no-internet",
        "UZ",
        APP,
        P.COMPLAINT_CATEGORY_NETWORK,
        INCIDENT,
        "Uyda ikki kundan beri mobil internet ishlamayapti, telefonda 4G belgisi yoʻq.",
        severity=P.SEVERITY_MAJOR,
        about_line=True,
    ),
    DemoTicket(
        "uz-no-internet-again",
        "UZ",
        WEB,
        P.COMPLAINT_CATEGORY_NETWORK,
        COMPLAINT,
        "Internet hali ham yoʻq, ilovadagi murojaatimga javob boʻlmadi.",
        steps=(Step("merge", "uz-no-internet"),),
        same_customer_as="uz-no-internet",
    ),
    DemoTicket(
        "uz-points-missing",
        "UZ",
        APP,
        P.COMPLAINT_CATEGORY_LOYALTY,
        COMPLAINT,
        "Oktyabr oyidagi toʻlov uchun ballar hisobimga tushmadi.",
        steps=(
            Step("start", "Mijozning ball tarixi tekshirilmoqda"),
            Step(
                "resolve",
                "Ballar qayta hisoblandi; noqulaylik uchun 300 ball sovgʻa qilindi.",
                points=300,
                code="goodwill",
            ),
            Step("accept", "Rahmat, ballar tushdi"),
            Step("satisfaction", "Tez hal qilindi, rahmat!", csat=5, nps=9),
        ),
    ),
    DemoTicket(
        "uz-handset-at-shop",
        "UZ",
        RETAIL_SHOP,
        P.COMPLAINT_CATEGORY_DEVICE,
        COMPLAINT,
        "Doʻkonda sotib olingan telefon ikki haftada yonmay qoldi; kafolat boʻyicha almashtirish soʻralmoqda.",
        steps=(
            Step("start", "Kafolat shartlari tekshirildi"),
            Step("hold", "Ishlab chiqaruvchining servis markazi xulosasi kutilmoqda"),
        ),
        severity=P.SEVERITY_MAJOR,
        at_partner=True,
    ),
    DemoTicket(
        "uz-unknown-charge",
        "UZ",
        CALL_CENTRE,
        P.COMPLAINT_CATEGORY_BILLING_DISPUTE,
        COMPLAINT,
        "Noyabr hisobida men ulanmagan obuna uchun 25 000 soʻm yechilgan.",
        steps=(
            Step("start", "Obunalar tarixi koʻrib chiqildi"),
            Step("note", "Kontent-provayder obunasi mijoz roziligisiz ulangan; pul qaytariladi."),
            Step("resolve", "25 000 soʻm hisobingizga qaytarildi, obuna oʻchirildi.", code="refund"),
            Step("accept", "Mijoz telefonda rozi boʻldi"),
            Step("satisfaction", "Pul qaytdi, lekin uch kun kutdim.", csat=2, nps=4),
        ),
    ),
    DemoTicket(
        "ua-roaming-charge",
        "UA",
        WEB,
        P.COMPLAINT_CATEGORY_BILLING_DISPUTE,
        COMPLAINT,
        "З рахунку списали 150 грн за роумінг, хоча я не виїжджав з України.",
        steps=(
            Step("start", "Перевіряємо записи роумінгу"),
            Step("note", "Сесія з мережі сусідньої країни біля кордону; запит до партнера-оператора."),
        ),
    ),
    DemoTicket(
        "ua-outage",
        "UA",
        CALL_CENTRE,
        P.COMPLAINT_CATEGORY_NETWORK,
        INCIDENT,
        "Після відключення світла немає зв’язку, дзвінки обриваються вже добу.",
        steps=(
            Step("start", "Базова станція без живлення"),
            Step(
                "resolve",
                "Базову станцію переведено на резервне живлення; за незручності нараховано 500 бонусів.",
                points=500,
                code="fixed",
            ),
        ),
        severity=P.SEVERITY_CRITICAL,
        about_line=True,
    ),
    DemoTicket(
        "ua-pushy-consultant",
        "UA",
        APP,
        P.COMPLAINT_CATEGORY_SHOP_SERVICE,
        COMPLAINT,
        "Консультант у магазині нав’язував платне страхування телефону.",
        steps=(Step("cancel", "Питання вирішили в магазині"),),
    ),
    DemoTicket(
        "vn-cheaper-plan",
        "VN",
        CALL_CENTRE,
        P.COMPLAINT_CATEGORY_TARIFF_CHANGE,
        REQUEST,
        "Tôi muốn đổi sang gói cước rẻ hơn nhưng không biết gói nào phù hợp với mình.",
        steps=(
            Step("start", "Đang xem mức sử dụng của thuê bao"),
            Step("reply", "Anh/chị vui lòng cho biết mỗi tháng thường gọi bao nhiêu phút và dùng bao nhiêu dữ liệu?"),
            Step("await", "Chờ khách hàng trả lời"),
        ),
    ),
    DemoTicket(
        "vn-double-bill",
        "VN",
        WEB,
        P.COMPLAINT_CATEGORY_BILLING_DISPUTE,
        COMPLAINT,
        "Hóa đơn tháng này cao gấp đôi tháng trước dù tôi không dùng thêm.",
        steps=(
            Step("start", "Đối soát hóa đơn"),
            Step("resolve", "Chi phí tăng do dữ liệu vượt gói; đã gửi bảng chi tiết theo ngày.", code="explained"),
            Step("reopen", "Tôi vẫn không đồng ý, tôi không dùng nhiều dữ liệu như vậy"),
        ),
    ),
    DemoTicket(
        "vn-ha-long-outage",
        "VN",
        CALL_CENTRE,
        P.COMPLAINT_CATEGORY_NETWORK,
        INCIDENT,
        "Mất sóng 4G ở khu vực Hạ Long từ sáng nay.",
        steps=(
            Step("start", "Đã chuyển cho đội kỹ thuật"),
            Step("hold", "Chờ đội kỹ thuật thay thiết bị trạm phát sóng"),
        ),
        severity=P.SEVERITY_MAJOR,
    ),
    DemoTicket(
        "vn-ha-long-no-data",
        "VN",
        APP,
        P.COMPLAINT_CATEGORY_NETWORK,
        INCIDENT,
        "Không vào được mạng ở Hạ Long, điện thoại chỉ hiện 3G.",
        steps=(Step("link", "vn-ha-long-outage"),),
    ),
    DemoTicket(
        "ru-test-message",
        "RU",
        APP,
        P.COMPLAINT_CATEGORY_OTHER,
        COMPLAINT,
        "Проверка связи, тест.",
        steps=(Step("reject", "Не обращение: тестовое сообщение"),),
    ),
    DemoTicket(
        "ru-esim",
        "RU",
        CALL_CENTRE,
        P.COMPLAINT_CATEGORY_DEVICE,
        REQUEST,
        "После переноса номера на новый телефон не работает eSIM.",
        steps=(
            Step("start", "Проверили профиль eSIM"),
            Step("escalate", "Нужна вторая линия: профиль не загружается"),
        ),
    ),
)
"""The demo tickets: every state (acknowledged, in progress, pending, held, resolved, closed with an
answer to the survey, rejected, cancelled, merged) and every channel."""


@dataclass(frozen=True)
class ComplaintsSample:
    """Values for the example calls."""

    department: str
    """A department with open tickets, `departments/{id}`."""
    complaint: str
    """A customer's complaint, resolved with goodwill when there is one, `complaints/{id}`."""
    customer: str
    """Its customer."""


@dataclass(frozen=True)
class TicketsLoaded:
    """What the tickets of the demo came to."""

    complaints: int
    """Tickets filed."""
    by_state: dict[str, int]
    """Tickets per state they ended in, e.g. {"COMPLAINT_STATE_HELD": 2}."""
    problems: list[str]
    """Steps the complaints service refused or failed, each with the ticket, the call and the answer;
    the other tickets were loaded all the same."""
    sample: ComplaintsSample | None


async def load_organisation(gateway: LocalGateway) -> tuple[int, int, int]:
    """Creates the departments with their calendars and SLA plans, their agents and the routing rules;
    returns how many of each the demo has."""
    async with gateway.as_employee(SUPERVISOR, SUPERVISOR_ROLES) as channel:
        stub = ComplaintServiceStub(channel)
        for department in DEPARTMENTS:
            await _created(
                stub.CreateDepartment(
                    complaint_service_pb2.CreateDepartmentRequest(
                        department=_department_message(department),
                        department_id=department.department_id,
                        request_id=f"demo-department-{department.department_id}",
                    ),
                    timeout=CALL_TIMEOUT_SECONDS,
                )
            )
        staff = [(d.department_id, agent) for d in DEPARTMENTS for agent in d.agents]
        staff += [(DEFAULT_DEPARTMENT, agent) for agent in DEFAULT_DEPARTMENT_AGENTS]
        await asyncio.gather(
            *(_created(_create_agent(stub, department, agent)) for department, agent in staff),
            *(_created(_create_rule(stub, rule)) for rule in ROUTING_RULES),
        )
    return len(DEPARTMENTS) + 1, len(staff), len(ROUTING_RULES)


async def holds_complaints(gateway: LocalGateway) -> bool:
    """Whether the complaints service behind `gateway` holds any ticket."""
    async with gateway.as_employee(SUPERVISOR, SUPERVISOR_ROLES) as channel:
        page = await ComplaintServiceStub(channel).ListComplaints(
            complaint_service_pb2.ListComplaintsRequest(page_size=1), timeout=CALL_TIMEOUT_SECONDS
        )
    return len(page.complaints) > 0


async def load_tickets(gateway: LocalGateway, customers: Sequence[LoadedCustomer]) -> TicketsLoaded:
    """Files the demo tickets for demo customers and takes each through its steps, as the caller of
    each step; a ticket that merges into or links to another goes once that one is filed."""
    holders = await _holders(gateway, customers)
    problems: list[str] = []
    async with contextlib.AsyncExitStack() as stack:
        callers = _Callers(gateway, stack)
        tickets: dict[str, complaint_pb2.Complaint] = {}
        refers = {ticket.key for ticket in TICKETS if any(step.verb in ("merge", "link") for step in ticket.steps)}
        for wave in ([t for t in TICKETS if t.key not in refers], [t for t in TICKETS if t.key in refers]):
            await asyncio.gather(
                *(
                    _play(callers, ticket, holders[ticket.key], tickets, problems)
                    for ticket in wave
                    if ticket.key in holders
                )
            )
    missing = [ticket.key for ticket in TICKETS if ticket.key not in holders]
    problems += [f"no demo customer fits ticket {key}" for key in missing]
    return TicketsLoaded(
        complaints=len(tickets),
        by_state=dict(Counter(complaint_pb2.ComplaintState.Name(t.state) for t in tickets.values())),
        problems=problems,
        sample=_pick_sample(list(tickets.values()), preferred=tickets.get("ua-outage")),
    )


async def find_sample(gateway: LocalGateway) -> ComplaintsSample | None:
    """Values for the example calls from the tickets the system holds."""
    async with gateway.as_employee(SUPERVISOR, SUPERVISOR_ROLES) as channel:
        page = await ComplaintServiceStub(channel).ListComplaints(
            complaint_service_pb2.ListComplaintsRequest(page_size=100), timeout=CALL_TIMEOUT_SECONDS
        )
    with_goodwill = [c for c in page.complaints if c.resolution.compensation_points > 0]
    return _pick_sample(list(page.complaints), preferred=with_goodwill[0] if with_goodwill else None)


class _Callers:
    """Channels to the gateway as each caller of the demo, opened on first use and closed together."""

    def __init__(self, gateway: LocalGateway, channels: contextlib.AsyncExitStack) -> None:
        self._gateway = gateway
        self._channels = channels
        self._opened: dict[str, grpc.aio.Channel] = {}

    async def supervisor(self) -> grpc.aio.Channel:
        return await self._channel("supervisor", lambda: self._gateway.as_employee(SUPERVISOR, SUPERVISOR_ROLES))

    async def agent(self, agent_id: str) -> grpc.aio.Channel:
        """The agent, under the agent's own name."""
        return await self._channel(f"agents/{agent_id}", lambda: self._gateway.as_employee(agent_id, AGENT_ROLES))

    async def customer(self, customer: str) -> grpc.aio.Channel:
        return await self._channel(customer, lambda: self._gateway.as_customer(customer))

    async def partner(self) -> grpc.aio.Channel:
        return await self._channel("partner", lambda: self._gateway.as_partner(DEMO_RETAILER))

    async def _channel(self, key: str, open_channel: Callable[[], grpc.aio.Channel]) -> grpc.aio.Channel:
        if key not in self._opened:
            self._opened[key] = await self._channels.enter_async_context(open_channel())
        return self._opened[key]


@dataclass(frozen=True)
class _Holder:
    """The customer a demo ticket is about, and their line."""

    customer: customer_pb2.Customer
    line: str


async def _holders(gateway: LocalGateway, customers: Sequence[LoadedCustomer]) -> dict[str, _Holder]:
    """A different active person of the ticket's country for each ticket (the one of `same_customer_as`
    where given; one the demo retail chain onboarded for a ticket at its counter), with a line."""
    chosen: dict[str, _Holder] = {}
    taken: set[str] = set()
    people = [
        entry
        for entry in customers
        if entry.customer.status == customer_pb2.CUSTOMER_STATUS_ACTIVE and entry.customer.HasField("individual")
    ]
    async with gateway.as_employee(SUPERVISOR, SUPERVISOR_ROLES) as channel:
        lines_of = CustomerServiceStub(channel)
        for ticket in TICKETS:
            if ticket.same_customer_as:
                if ticket.same_customer_as in chosen:
                    chosen[ticket.key] = chosen[ticket.same_customer_as]
                continue
            for entry in people:
                customer = entry.customer
                if customer.name in taken or _country_of(customer) != ticket.country:
                    continue
                if ticket.at_partner != (customer.retailer_id == DEMO_PARTNER):
                    continue
                lines = (
                    entry.lines
                    or (
                        await lines_of.ListSubscriptions(
                            customer_service_pb2.ListSubscriptionsRequest(parent=customer.name, page_size=5),
                            timeout=CALL_TIMEOUT_SECONDS,
                        )
                    ).subscriptions
                )
                if not lines:
                    continue
                taken.add(customer.name)
                chosen[ticket.key] = _Holder(customer, lines[0].name)
                break
    return chosen


async def _play(
    callers: _Callers,
    ticket: DemoTicket,
    holder: _Holder,
    tickets: dict[str, complaint_pb2.Complaint],
    problems: list[str],
) -> None:
    """Files the ticket and takes it through its steps; a step refused or failed is noted in `problems`
    with the call and the answer, and the ticket's later steps are left out."""
    call = "CreateComplaint"
    try:
        complaint = await _file(callers, ticket, holder)
        tickets[ticket.key] = complaint
        for number, step in enumerate(ticket.steps):
            call = f"{_METHODS[step.verb]} ({step.verb})"
            caller = await _caller_of(callers, ticket, step, complaint, holder)
            request_id = f"demo-complaint-{ticket.key}-{number}"
            complaint = await _take_step(caller, step, complaint, tickets, request_id)
            tickets[ticket.key] = complaint
    except grpc.aio.AioRpcError as error:
        problems.append(f"ticket {ticket.key}: {call}: {error.code().name}: {error.details()}")


async def _file(callers: _Callers, ticket: DemoTicket, holder: _Holder) -> complaint_pb2.Complaint:
    """Filed where the ticket says: at the retail chain's counter, by the customer in the app or on the
    web, or by the call-centre agent who took the call."""
    complaint = complaint_pb2.Complaint(
        customer=holder.customer.name,
        line=holder.line if ticket.about_line else "",
        type=ticket.type,
        category=ticket.category,
        description=ticket.description,
        channel=ticket.channel,
        severity=ticket.severity,
        contact=phone_of(holder.customer),
    )
    if ticket.at_partner:
        channel = await callers.partner()
        complaint.retailer_id = DEMO_PARTNER
        complaint.related_parties.append(
            complaint_pb2.RelatedParty(id=DEMO_PARTNER, role=P.PARTY_ROLE_RETAIL_PARTNER, display_name="Texnomart")
        )
    elif ticket.channel in SELF_SERVICE:
        channel = await callers.customer(holder.customer.name)
    else:
        channel = await callers.agent(_call_centre_agent(ticket.country))
    return await ComplaintServiceStub(channel).CreateComplaint(
        complaint_service_pb2.CreateComplaintRequest(complaint=complaint, request_id=f"demo-complaint-{ticket.key}"),
        timeout=CALL_TIMEOUT_SECONDS,
    )


async def _caller_of(
    callers: _Callers, ticket: DemoTicket, step: Step, complaint: complaint_pb2.Complaint, holder: _Holder
) -> grpc.aio.Channel:
    """Who takes a step: the customer answers for themselves in self-service, an agent records what
    they said on the phone or at a shop; the supervisor rejects; the assigned agent does the work."""
    if step.verb == "reject":
        return await callers.supervisor()
    if step.verb in _CUSTOMERS_WORDS and ticket.channel in SELF_SERVICE and not ticket.at_partner:
        return await callers.customer(holder.customer.name)
    if complaint.agent:
        return await callers.agent(complaint.agent.rsplit("/", 1)[-1])
    return await callers.supervisor()


_CUSTOMERS_WORDS = frozenset({"accept", "reopen", "satisfaction", "cancel"})
_METHODS = {
    "start": "StartComplaint",
    "note": "CreateNote",
    "reply": "CreateNote",
    "await": "AwaitCustomer",
    "hold": "HoldComplaint",
    "resolve": "ResolveComplaint",
    "accept": "AcceptResolution",
    "reopen": "RejectResolution",
    "satisfaction": "RecordSatisfaction",
    "reject": "RejectComplaint",
    "cancel": "CancelComplaint",
    "escalate": "EscalateComplaint",
    "merge": "MergeComplaint",
    "link": "LinkComplaint",
}


async def _take_step(
    channel: grpc.aio.Channel,
    step: Step,
    complaint: complaint_pb2.Complaint,
    tickets: dict[str, complaint_pb2.Complaint],
    request_id: str,
) -> complaint_pb2.Complaint:
    """Takes one step; returns the ticket as it stands after it."""
    stub = ComplaintServiceStub(channel)
    name, timeout, text = complaint.name, CALL_TIMEOUT_SECONDS, step.text
    service = complaint_service_pb2
    if step.verb in ("note", "reply"):
        visibility = P.NOTE_VISIBILITY_INTERNAL if step.verb == "note" else P.NOTE_VISIBILITY_CUSTOMER_FACING
        note = complaint_pb2.Note(text=text, visibility=visibility)
        await stub.CreateNote(service.CreateNoteRequest(parent=name, note=note, request_id=request_id), timeout=timeout)
        return complaint
    if step.verb == "resolve":
        if step.points:
            await _until_loyalty_account_exists(channel, complaint.customer)
        resolution = complaint_pb2.Resolution(text=text, code=step.code, compensation_points=step.points)
        request = service.ResolveComplaintRequest(name=name, resolution=resolution, request_id=request_id)
        return await stub.ResolveComplaint(request, timeout=timeout)
    if step.verb == "satisfaction":
        answer = complaint_pb2.Satisfaction(csat=step.csat, nps=step.nps, comment=text)
        request_satisfaction = service.RecordSatisfactionRequest(name=name, satisfaction=answer, request_id=request_id)
        return await stub.RecordSatisfaction(request_satisfaction, timeout=timeout)
    if step.verb == "merge":
        master = tickets[step.text].name
        merge = service.MergeComplaintRequest(name=name, master=master, reason="Duplicate", request_id=request_id)
        return await stub.MergeComplaint(merge, timeout=timeout)
    if step.verb == "link":
        parent = tickets[step.text].name
        link = service.LinkComplaintRequest(name=name, parent=parent, reason="One outage", request_id=request_id)
        return await stub.LinkComplaint(link, timeout=timeout)
    if step.verb == "escalate":
        escalation = service.EscalateComplaintRequest(name=name, reason=text, request_id=request_id)
        return await stub.EscalateComplaint(escalation, timeout=timeout)
    if step.verb == "start":
        return await stub.StartComplaint(
            service.StartComplaintRequest(name=name, reason=text, request_id=request_id), timeout=timeout
        )
    if step.verb == "await":
        return await stub.AwaitCustomer(
            service.AwaitCustomerRequest(name=name, reason=text, request_id=request_id), timeout=timeout
        )
    if step.verb == "hold":
        return await stub.HoldComplaint(
            service.HoldComplaintRequest(name=name, reason=text, request_id=request_id), timeout=timeout
        )
    if step.verb == "accept":
        return await stub.AcceptResolution(
            service.AcceptResolutionRequest(name=name, reason=text, request_id=request_id), timeout=timeout
        )
    if step.verb == "reopen":
        return await stub.RejectResolution(
            service.RejectResolutionRequest(name=name, reason=text, request_id=request_id), timeout=timeout
        )
    if step.verb == "reject":
        return await stub.RejectComplaint(
            service.RejectComplaintRequest(name=name, reason=text, request_id=request_id), timeout=timeout
        )
    if step.verb == "cancel":
        return await stub.CancelComplaint(
            service.CancelComplaintRequest(name=name, reason=text, request_id=request_id), timeout=timeout
        )
    raise ValueError(f"no such step: {step.verb!r}")


async def _until_loyalty_account_exists(channel: grpc.aio.Channel, customer: str) -> None:
    """Waits (bounded) until the customer's loyalty account is open, as the loyalty service opens it
    from the customer feed: goodwill for a customer without one would be refused."""
    loyalty = LoyaltyServiceStub(channel)
    account = "accounts/" + customer.removeprefix("customers/")
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + ACCOUNT_WAIT_SECONDS
    while True:
        try:
            await loyalty.GetAccount(loyalty_service_pb2.GetAccountRequest(name=account), timeout=CALL_TIMEOUT_SECONDS)
            return
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND or loop.time() > give_up_at:
                raise
        await asyncio.sleep(1.0)


def _department_message(department: DemoDepartment) -> departments_pb2.Department:
    return departments_pb2.Department(
        display_name=department.display_name,
        calendar=departments_pb2.BusinessCalendar(
            time_zone=department.time_zone,
            country_code=department.country_code,
            opening_hours=[
                departments_pb2.OpeningHours(
                    day=day,
                    open_time=_time(opening.opens),
                    close_time=_time(opening.closes),
                )
                for opening in department.opening
                for day in opening.days
            ],
            company_holidays=[_date(day) for day in department.company_holidays],
            company_working_days=[_date(day) for day in department.company_working_days],
        ),
        sla_targets=[
            departments_pb2.SlaTarget(priority=priority, first_response_minutes=first, resolution_minutes=resolution)
            for priority, (first, resolution) in department.targets.items()
        ],
        assignment_policy=department.policy,
    )


def _create_agent(
    stub: "ComplaintServiceAsyncStub", department: str, agent: DemoAgent
) -> Awaitable[departments_pb2.Agent]:
    return stub.CreateAgent(
        complaint_service_pb2.CreateAgentRequest(
            parent=f"departments/{department}",
            agent=departments_pb2.Agent(
                display_name=agent.display_name, available=agent.available, senior=agent.senior
            ),
            agent_id=agent.agent_id,
            request_id=f"demo-agent-{agent.agent_id}",
        ),
        timeout=CALL_TIMEOUT_SECONDS,
    )


def _create_rule(stub: "ComplaintServiceAsyncStub", rule: DemoRule) -> Awaitable[departments_pb2.RoutingRule]:
    return stub.CreateRoutingRule(
        complaint_service_pb2.CreateRoutingRuleRequest(
            routing_rule=departments_pb2.RoutingRule(
                category=rule.category,
                channel=rule.channel,
                segment=rule.segment,
                region=rule.region,
                department=f"departments/{rule.department}",
                priority=rule.priority,
            ),
            routing_rule_id=rule.rule_id,
            request_id=f"demo-rule-{rule.rule_id}",
        ),
        timeout=CALL_TIMEOUT_SECONDS,
    )


async def _created(call: Awaitable[object]) -> None:
    """Awaits a create; one that exists already (an earlier load) is fine."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise


def _call_centre_agent(country: str) -> str:
    """The agent of the country's contact centre who answers the phone first."""
    centre = next(d for d in DEPARTMENTS if d.department_id == f"{country.lower()}-contact-centre")
    return next(agent.agent_id for agent in centre.agents if agent.available)


def _pick_sample(
    complaints: Sequence[complaint_pb2.Complaint], *, preferred: complaint_pb2.Complaint | None
) -> ComplaintsSample | None:
    """The department with the most open tickets, and the preferred ticket (else the newest)."""
    if not complaints:
        return None
    open_states = {
        P.COMPLAINT_STATE_ACKNOWLEDGED,
        P.COMPLAINT_STATE_IN_PROGRESS,
        P.COMPLAINT_STATE_PENDING,
        P.COMPLAINT_STATE_HELD,
    }
    backlog = Counter(c.department for c in complaints if c.state in open_states)
    department = backlog.most_common(1)[0][0] if backlog else complaints[0].department
    shown = preferred or complaints[0]
    return ComplaintsSample(department=department, complaint=shown.name, customer=shown.customer)


def _country_of(customer: customer_pb2.Customer) -> str:
    return next((m.postal_address.country_code for m in customer.contact_media if m.HasField("postal_address")), "")


def _time(text: str) -> timeofday_pb2.TimeOfDay:
    hours, minutes = text.split(":")
    return timeofday_pb2.TimeOfDay(hours=int(hours), minutes=int(minutes))


def _date(day: date) -> date_pb2.Date:
    return date_pb2.Date(year=day.year, month=day.month, day=day.day)
