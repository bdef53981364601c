"""Demo loyalty data for a local run: a rewards catalog (bill discounts, data bundles, vouchers, and
handsets and prizes stocked at the demo retail partners), and some redemptions by the demo customers
once the loyalty service has credited their payments, usage and first lines.

Each step calls as the one who does it in life: marketing and the back office fill the catalog and
stock (the batch identity `demo-loader`), customers redeem for themselves in the app (a customer
token each), and a handset is reserved and handed over at the demo retail chain's counter (its client
certificate), which first finds the customer by phone number.

Every request carries a fixed request id, so loading twice changes nothing.
"""

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
from google.type import money_pb2

from crm.customer.v1 import customer_pb2, customer_service_pb2
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from crm.loyalty.v1 import loyalty_pb2, loyalty_service_pb2, rewards_pb2
from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceStub
from tools.credentials import DEMO_RETAILER
from tools.demo_data import DEMO_PARTNER, LOADER, phone_of
from tools.local_gateway import LocalGateway

if TYPE_CHECKING:
    # mypy-protobuf's types of the stubs on an asyncio channel; they exist for type checkers only.
    from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceAsyncStub
    from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceAsyncStub

CALL_TIMEOUT_SECONDS = 30.0
"""Each call's deadline: room for a busy machine, where a statement that ran out of time is sent again."""
CATCH_UP_TIMEOUT_SECONDS = 90.0
MAX_CUSTOMER_PAGES = 50
CONCURRENT_CALLS = 8
"""Calls of one kind in flight at once: enough to keep a paced channel busy."""
# Marketing fills the catalog and reads the figures; the back office stocks and looks accounts up.
LOADER_ROLES = ("back-office", "marketing")
PARTNERS = (
    DEMO_PARTNER,
    "retailers/mediapark",
    "retailers/comfy",
    "retailers/foxtrot",
    "retailers/thegioididong",
    "retailers/fpt-shop",
    "retailers/svyaznoy",
    "retailers/mvideo",
)


@dataclass(frozen=True)
class CatalogItem:
    """A reward of the demo catalog."""

    reward_id: str
    display_name: str
    kind: rewards_pb2.RewardKind
    points_price: int
    value_usd: int = 0
    eligible_tiers: tuple[str, ...] = ()
    pieces_per_partner: int = 0


CATALOG = (
    CatalogItem("bill-discount-5", "5 USD off the next bill", rewards_pb2.REWARD_KIND_BILL_DISCOUNT, 500, 5),
    CatalogItem(
        "bill-discount-20",
        "20 USD off the next bill",
        rewards_pb2.REWARD_KIND_BILL_DISCOUNT,
        1_800,
        20,
        eligible_tiers=("silver", "gold", "platinum"),
    ),
    CatalogItem("data-bundle-5gb", "5 GB of mobile data for 30 days", rewards_pb2.REWARD_KIND_DATA_BUNDLE, 300),
    CatalogItem("cinema-voucher", "Two cinema tickets", rewards_pb2.REWARD_KIND_VOUCHER, 400, 8),
    CatalogItem("smart-speaker", "Smart speaker", rewards_pb2.REWARD_KIND_PRIZE, 1_500, 40, pieces_per_partner=6),
    CatalogItem(
        "handset-redmi-note-14",
        "Redmi Note 14 handset",
        rewards_pb2.REWARD_KIND_HANDSET,
        2_500,
        200,
        eligible_tiers=("silver", "gold", "platinum"),
        pieces_per_partner=4,
    ),
    CatalogItem(
        "handset-galaxy-s25",
        "Samsung Galaxy S25 handset",
        rewards_pb2.REWARD_KIND_HANDSET,
        6_000,
        800,
        eligible_tiers=("gold", "platinum"),
        pieces_per_partner=2,
    ),
)


@dataclass(frozen=True)
class LoyaltySummary:
    """What the demo shows."""

    accounts: int
    rewards: int
    redemptions: int
    sample_account: str
    """An account with points, for the example calls."""


@dataclass(frozen=True)
class _Holder:
    """An account with points and the phone number its customer gives at a counter."""

    account: loyalty_pb2.Account
    phone_number: str


async def load_loyalty_demo(gateway: LocalGateway, expected_accounts: int) -> LoyaltySummary:
    """Fills the catalog, waits (bounded) until the accounts of the demo customers exist and have
    earned, then redeems a few rewards, all through `gateway`."""
    async with gateway.as_employee(LOADER, LOADER_ROLES) as channel:
        stub = LoyaltyServiceStub(channel)
        for item in CATALOG:
            await _create(stub, item)
        accounts = await _wait_for_accounts(stub, expected_accounts)
        holders = await _accounts_with_points(CustomerServiceStub(channel), stub, minimum=600)
    redemptions = await _redeem_in_the_app(gateway, holders[:20])
    redemptions += await _hand_over_at_the_counter(gateway, holders)
    return LoyaltySummary(accounts, len(CATALOG), redemptions, holders[-1].account.name if holders else "")


async def _create(stub: "LoyaltyServiceAsyncStub", item: CatalogItem) -> None:
    reward = rewards_pb2.Reward(
        display_name=item.display_name,
        kind=item.kind,
        points_price=item.points_price,
        eligible_tiers=item.eligible_tiers,
        value=money_pb2.Money(currency_code="USD", units=item.value_usd) if item.value_usd else None,
    )
    try:
        await stub.CreateReward(
            loyalty_service_pb2.CreateRewardRequest(
                reward=reward, reward_id=item.reward_id, request_id=f"demo-reward-{item.reward_id}"
            ),
            timeout=CALL_TIMEOUT_SECONDS,
        )
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise
    for partner in PARTNERS if item.pieces_per_partner else ():
        await stub.RestockReward(
            loyalty_service_pb2.RestockRewardRequest(
                reward=f"rewards/{item.reward_id}",
                partner=partner,
                quantity=item.pieces_per_partner,
                request_id=f"demo-stock-{item.reward_id}-{partner.rsplit('/', 1)[1]}",
            ),
            timeout=CALL_TIMEOUT_SECONDS,
        )


async def _wait_for_accounts(stub: "LoyaltyServiceAsyncStub", expected: int) -> int:
    """Waits until the loyalty service has opened `expected` accounts and its figures stop moving."""
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + CATCH_UP_TIMEOUT_SECONDS
    previous = None
    while loop.time() < give_up_at:
        figures = await stub.GetProgramKpis(loyalty_service_pb2.GetProgramKpisRequest(), timeout=CALL_TIMEOUT_SECONDS)
        now = (figures.active_accounts, figures.earned_points)
        if figures.active_accounts >= expected and now == previous:
            return figures.active_accounts
        previous = now
        await asyncio.sleep(2.0)
    return previous[0] if previous else 0


async def _redeem_in_the_app(gateway: LocalGateway, holders: list[_Holder]) -> int:
    """Self-service redemptions, each customer with a token of their own (and a rate of their own, so
    several redeem at once); returns how many went through."""
    at_once = asyncio.Semaphore(CONCURRENT_CALLS)

    async def redeem(index: int, holder: _Holder) -> bool:
        account = holder.account.name
        reward = "rewards/data-bundle-5gb" if index % 2 else "rewards/cinema-voucher"
        customer = "customers/" + account.removeprefix("accounts/")
        async with at_once, gateway.as_customer(customer) as channel:
            return not await _refused_by_rules(
                LoyaltyServiceStub(channel).RedeemReward(
                    loyalty_service_pb2.RedeemRewardRequest(
                        account=account, reward=reward, request_id=f"demo-redeem-{account[-12:]}"
                    ),
                    timeout=CALL_TIMEOUT_SECONDS,
                )
            )

    return sum(await asyncio.gather(*(redeem(index, holder) for index, holder in enumerate(holders))))


async def _hand_over_at_the_counter(gateway: LocalGateway, holders: list[_Holder]) -> int:
    """A handset reserved and handed over at the demo retail chain: the customer gives their phone
    number at the counter, the shop finds them by it, reserves a piece and captures it. Returns the
    redemptions made (0 when no customer has the tier and the points)."""
    silver = [
        holder
        for holder in holders
        if holder.account.tier in ("silver", "gold", "platinum")
        and holder.account.available_points >= 2_500
        and holder.phone_number
    ]
    if not silver:
        return 0
    holder = silver[0]
    async with gateway.as_partner(DEMO_RETAILER) as channel:
        customers, loyalty = CustomerServiceStub(channel), LoyaltyServiceStub(channel)
        await customers.SearchCustomers(
            customer_service_pb2.SearchCustomersRequest(phone_number=holder.phone_number, page_size=1),
            timeout=CALL_TIMEOUT_SECONDS,
        )
        held = await loyalty.ReserveReward(
            loyalty_service_pb2.ReserveRewardRequest(
                account=holder.account.name,
                reward="rewards/handset-redmi-note-14",
                partner=DEMO_PARTNER,
                request_id=f"demo-reserve-{holder.account.name[-12:]}",
            ),
            timeout=CALL_TIMEOUT_SECONDS,
        )
        await loyalty.CaptureReservation(
            loyalty_service_pb2.CaptureReservationRequest(name=held.name, request_id=f"demo-capture-{held.name[-12:]}"),
            timeout=CALL_TIMEOUT_SECONDS,
        )
    return 1


async def _accounts_with_points(
    customers: "CustomerServiceAsyncStub", loyalty: "LoyaltyServiceAsyncStub", minimum: int
) -> list[_Holder]:
    """Accounts holding at least `minimum` points, in the order of the customers: every customer has
    one, named by the customer's id. Several are read at once, the channel pacing them."""
    at_once = asyncio.Semaphore(CONCURRENT_CALLS)

    async def holder(customer: customer_pb2.Customer) -> _Holder | None:
        account_name = "accounts/" + customer.name.removeprefix("customers/")
        async with at_once:
            try:
                account = await loyalty.GetAccount(
                    loyalty_service_pb2.GetAccountRequest(name=account_name), timeout=CALL_TIMEOUT_SECONDS
                )
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND:
                    raise
                return None
        return _Holder(account, phone_of(customer)) if account.available_points >= minimum else None

    found: list[_Holder] = []
    token = ""
    for _ in range(MAX_CUSTOMER_PAGES):
        page = await customers.ListCustomers(
            customer_service_pb2.ListCustomersRequest(page_size=200, page_token=token), timeout=CALL_TIMEOUT_SECONDS
        )
        found += [h for h in await asyncio.gather(*(holder(c) for c in page.customers)) if h is not None]
        token = page.next_page_token
        if not token:
            break
    return found


async def _refused_by_rules(call: Awaitable[object]) -> bool:
    """Awaits a call; True when the loyalty rules refused it (not enough points, not eligible)."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
            raise
        return True
    return False
