"""Segments against a real PostgreSQL: evaluated when inputs change, explained, counted, configured."""

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.type import date_pb2, money_pb2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.clock import SYSTEM_CLOCK
from chassis.database import Database
from crm.customer.v1 import billing_pb2, customer_pb2, customer_service_pb2, segments_pb2
from crm.customer.v1.billing_pb2_grpc import BillingServiceStub
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from crm.customer.v1.segments_pb2_grpc import SegmentServiceStub
from services.customer.segments.evaluator import rank_vip
from tests.support import create_request, failure, line, person, request_id

TODAY = datetime.now(UTC).date()
DIMENSIONS = [d for d in segments_pb2.SegmentDimension.values() if d != segments_pb2.SEGMENT_DIMENSION_UNSPECIFIED]


@pytest.fixture
def segments(customer_channel: grpc.aio.Channel) -> SegmentServiceStub:
    return SegmentServiceStub(customer_channel)


@pytest.fixture
def billing(customer_channel: grpc.aio.Channel) -> BillingServiceStub:
    return BillingServiceStub(customer_channel)


def day(value: date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


async def segments_when(
    stub: SegmentServiceStub, customer: str, condition: Callable[[dict[str, segments_pb2.SegmentMembership]], bool]
) -> dict[str, segments_pb2.SegmentMembership]:
    """The customer's memberships once `condition` holds (the evaluator works in the background)."""
    async with asyncio.timeout(15):
        while True:
            answer = await stub.GetCustomerSegments(
                segments_pb2.GetCustomerSegmentsRequest(name=f"{customer}/segments"), timeout=5
            )
            found = {m.segment: m for m in answer.memberships}
            if condition(found):
                return found
            await asyncio.sleep(0.05)


async def ported_customer_of_30_with_a_4_year_line(customer_stub: CustomerServiceStub, region: str) -> str:
    """A customer aged 30 in `region`, with a line activated four years ago, who then ported out."""
    birth = TODAY.replace(year=TODAY.year - 30) - timedelta(days=3)
    created = await customer_stub.CreateCustomer(
        create_request(person(region=region, birth=(birth.year, birth.month, birth.day))), timeout=5
    )
    subscription = line()
    subscription.activation_date.CopyFrom(day(TODAY.replace(year=TODAY.year - 4)))
    await customer_stub.CreateSubscription(
        customer_service_pb2.CreateSubscriptionRequest(
            parent=created.name, subscription=subscription, request_id=request_id()
        ),
        timeout=5,
    )
    for status, reason in (
        (customer_pb2.CUSTOMER_STATUS_ACTIVE, customer_pb2.CHURN_REASON_UNSPECIFIED),
        (customer_pb2.CUSTOMER_STATUS_CHURNED, customer_pb2.CHURN_REASON_PORTED_TO_COMPETITOR),
    ):
        await customer_stub.ChangeCustomerStatus(
            customer_service_pb2.ChangeCustomerStatusRequest(
                name=created.name, status=status, churn_reason=reason, request_id=request_id()
            ),
            timeout=5,
        )
    return created.name


async def listed_by_dimension(stub: SegmentServiceStub) -> dict[str, list[int]]:
    """Every listed segment with the dimensions whose filter returned it."""
    found: dict[str, list[int]] = {}
    for dimension in DIMENSIONS:
        listed = await stub.ListSegments(segments_pb2.ListSegmentsRequest(dimension=dimension), timeout=5)
        for segment in listed.segments:
            found.setdefault(segment.name, []).append(dimension)
    return found


async def overdue_invoice(billing: BillingServiceStub, customer: str, invoice_id: str, days_overdue: int) -> None:
    await billing.RecordInvoice(
        billing_pb2.RecordInvoiceRequest(
            parent=customer,
            invoice=billing_pb2.Invoice(
                invoice_id=invoice_id,
                amount=money_pb2.Money(currency_code="UZS", units=90_000),
                issue_date=day(TODAY - timedelta(days=days_overdue + 10)),
                due_date=day(TODAY - timedelta(days=days_overdue)),
            ),
            request_id=request_id(),
        ),
        timeout=5,
    )


async def test_a_new_customer_gets_type_region_age_and_tenure_segments_with_reasons(
    customer_stub: CustomerServiceStub, segments: SegmentServiceStub
):
    birth = TODAY.replace(year=TODAY.year - 30) - timedelta(days=3)
    created = await customer_stub.CreateCustomer(
        create_request(person(region="Fargʻona viloyati", birth=(birth.year, birth.month, birth.day))), timeout=5
    )
    subscription = line()
    subscription.activation_date.CopyFrom(day(TODAY.replace(year=TODAY.year - 4)))
    await customer_stub.CreateSubscription(
        customer_service_pb2.CreateSubscriptionRequest(
            parent=created.name, subscription=subscription, request_id=request_id()
        ),
        timeout=5,
    )
    found = await segments_when(segments, created.name, lambda s: "segments/tenure-3-5" in s)
    assert {"segments/type-consumer", "segments/region-fargona-viloyati", "segments/age-25-35"} <= set(found)
    age = {e.factor: e.value for e in found["segments/age-25-35"].evidence}
    assert age["age_years"] == "30"
    assert found["segments/tenure-3-5"].rule == "tenure.band"


async def test_an_overdue_customer_becomes_a_debtor_and_leaves_after_paying(
    customer_stub: CustomerServiceStub, segments: SegmentServiceStub, billing: BillingServiceStub
):
    customer = (await customer_stub.CreateCustomer(create_request(person()), timeout=5)).name
    await overdue_invoice(billing, customer, "D-1", days_overdue=45)
    found = await segments_when(segments, customer, lambda s: "segments/debtor" in s)
    debtor = found["segments/debtor"]
    assert debtor.rule == "debtor.overdue"
    assert {(e.factor, e.value, e.threshold) for e in debtor.evidence} >= {("days_overdue", "45", "30")}
    await billing.RecordPayment(
        billing_pb2.RecordPaymentRequest(
            parent=customer,
            payment=billing_pb2.Payment(
                payment_id="P-1",
                invoice_id="D-1",
                amount=money_pb2.Money(currency_code="UZS", units=90_000),
                paid_date=day(TODAY),
            ),
            request_id=request_id(),
        ),
        timeout=5,
    )
    await segments_when(segments, customer, lambda s: "segments/debtor" not in s)


async def test_a_changed_threshold_applies_without_a_release(
    customer_stub: CustomerServiceStub, segments: SegmentServiceStub, billing: BillingServiceStub
):
    config = await segments.GetSegmentationConfig(
        segments_pb2.GetSegmentationConfigRequest(name="segmentationConfig"), timeout=5
    )
    stale = config.etag
    changed = await segments.UpdateSegmentationConfig(
        segments_pb2.UpdateSegmentationConfigRequest(
            config=segments_pb2.SegmentationConfig(debtor_min_days_overdue=10, etag=config.etag),
            update_mask=field_mask_pb2.FieldMask(paths=["debtor_min_days_overdue"]),
        ),
        timeout=5,
    )
    try:
        assert changed.debtor_min_days_overdue == 10 and changed.etag != stale
        assert changed.vip_top_share == config.vip_top_share
        customer = (await customer_stub.CreateCustomer(create_request(person()), timeout=5)).name
        await overdue_invoice(billing, customer, "T-1", days_overdue=15)
        found = await segments_when(segments, customer, lambda s: "segments/debtor" in s)
        assert ("days_overdue", "15", "10") in {
            (e.factor, e.value, e.threshold) for e in found["segments/debtor"].evidence
        }
        code, error = await failure(
            segments.UpdateSegmentationConfig(
                segments_pb2.UpdateSegmentationConfigRequest(
                    config=segments_pb2.SegmentationConfig(debtor_min_days_overdue=5, etag=stale),
                    update_mask=field_mask_pb2.FieldMask(paths=["debtor_min_days_overdue"]),
                ),
                timeout=5,
            )
        )
        assert code == grpc.StatusCode.ABORTED and error.reason == "ETAG_MISMATCH"
    finally:
        await segments.UpdateSegmentationConfig(
            segments_pb2.UpdateSegmentationConfigRequest(
                config=segments_pb2.SegmentationConfig(debtor_min_days_overdue=config.debtor_min_days_overdue),
                update_mask=field_mask_pb2.FieldMask(paths=["debtor_min_days_overdue"]),
            ),
            timeout=5,
        )


async def test_an_out_of_range_threshold_is_invalid_argument(segments: SegmentServiceStub):
    code, error = await failure(
        segments.UpdateSegmentationConfig(
            segments_pb2.UpdateSegmentationConfigRequest(
                config=segments_pb2.SegmentationConfig(vip_top_share=1.5),
                update_mask=field_mask_pb2.FieldMask(paths=["vip_top_share"]),
            ),
            timeout=5,
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == ["config.vip_top_share"]  # type: ignore[attr-defined]


async def test_falling_usage_raises_churn_risk_and_usage_segments_come_from_last_month(
    customer_stub: CustomerServiceStub, segments: SegmentServiceStub, customer_engine: AsyncEngine
):
    customer = (await customer_stub.CreateCustomer(create_request(person()), timeout=5)).name
    created = await customer_stub.CreateSubscription(
        customer_service_pb2.CreateSubscriptionRequest(parent=customer, subscription=line(), request_id=request_id()),
        timeout=5,
    )
    this_month = TODAY.replace(day=1)
    months = [this_month]
    for _ in range(3):
        months.append((months[-1] - timedelta(days=1)).replace(day=1))
    usage = {
        months[1]: (20.0, 5.0, 200.0, 4),
        months[2]: (300.0, 250.0, 12_000.0, 0),
        months[3]: (320.0, 260.0, 14_000.0, 0),
    }
    async with customer_engine.begin() as connection:
        for month, (voice, on_net, data, roaming) in usage.items():
            await connection.execute(
                text(
                    "INSERT INTO monthly_usage (subscription_id, customer_id, month, on_net_minutes, off_net_minutes, "
                    "data_mb, roaming_days, active_days, record_count) "
                    "VALUES (:s, :c, :m, :on_net, :off_net, :data, :roaming, 20, 20)"
                ),
                {
                    "s": created.name.rsplit("/", 1)[1],
                    "c": customer.removeprefix("customers/"),
                    "m": month,
                    "on_net": on_net,
                    "off_net": voice - on_net,
                    "data": data,
                    "roaming": roaming,
                },
            )
    # Any change of the customer's inputs brings a re-evaluation; here, activating the customer.
    await customer_stub.ChangeCustomerStatus(
        customer_service_pb2.ChangeCustomerStatusRequest(
            name=customer, status=customer_pb2.CUSTOMER_STATUS_ACTIVE, request_id=request_id()
        ),
        timeout=5,
    )
    found = await segments_when(segments, customer, lambda s: "segments/usage-roamer" in s)
    assert "segments/usage-low-user" not in found  # 220 units is above the low-user threshold of 100
    assert "segments/usage-data-heavy" not in found
    answer = await segments.GetCustomerSegments(
        segments_pb2.GetCustomerSegmentsRequest(name=f"{customer}/segments"), timeout=5
    )
    factors = {f.factor: f for f in answer.churn_factors}
    assert "falling_usage" in factors and factors["falling_usage"].contribution > 0.3
    assert answer.churn_risk_score == pytest.approx(sum(f.contribution for f in answer.churn_factors))


async def test_member_counters_match_memberships_and_members_page(
    customer_stub: CustomerServiceStub, segments: SegmentServiceStub, customer_engine: AsyncEngine
):
    created = [
        (await customer_stub.CreateCustomer(create_request(person(region="Qoraqalpogʻiston")), timeout=5)).name
        for _ in range(3)
    ]
    for customer in created:
        await segments_when(segments, customer, lambda s: "segments/region-qoraqalpogiston" in s)
    members: list[str] = []
    token = ""
    while True:
        page = await segments.ListSegmentMembers(
            segments_pb2.ListSegmentMembersRequest(
                segment="segments/region-qoraqalpogiston", page_size=2, page_token=token
            ),
            timeout=5,
        )
        members.extend(page.customers)
        token = page.next_page_token
        if not token:
            break
    assert set(created) <= set(members) and len(members) == len(set(members))
    listed = await segments.ListSegments(
        segments_pb2.ListSegmentsRequest(dimension=segments_pb2.SEGMENT_DIMENSION_REGION), timeout=5
    )
    counts = {s.name: s.member_count for s in listed.segments}
    assert counts["segments/region-qoraqalpogiston"] == len(members)
    async with customer_engine.connect() as connection:
        mismatched = await connection.execute(
            text(
                "SELECT c.segment FROM segment_counts c LEFT JOIN (SELECT segment, count(*) AS n "
                "FROM segment_memberships GROUP BY segment) m USING (segment) WHERE c.member_count <> coalesce(m.n, 0)"
            )
        )
        assert mismatched.all() == []


async def test_vip_ranking_puts_the_top_spender_in_value_vip(
    customer_stub: CustomerServiceStub,
    segments: SegmentServiceStub,
    billing: BillingServiceStub,
    customer_database: Database,
):
    big = (await customer_stub.CreateCustomer(create_request(person()), timeout=5)).name
    small = (await customer_stub.CreateCustomer(create_request(person()), timeout=5)).name
    for customer, units in ((big, 900_000_000), (small, 1_000)):
        await billing.RecordInvoice(
            billing_pb2.RecordInvoiceRequest(
                parent=customer,
                invoice=billing_pb2.Invoice(
                    invoice_id="V-1",
                    amount=money_pb2.Money(currency_code="UZS", units=units),
                    issue_date=day(TODAY),
                    due_date=day(TODAY + timedelta(days=20)),
                ),
                request_id=request_id(),
            ),
            timeout=5,
        )
    async with asyncio.timeout(15):
        while True:
            async with customer_database.transaction() as session:
                scored = await session.execute(
                    text(
                        "SELECT count(*) FROM customer_scores "
                        "WHERE customer_id = ANY(:ids) AND average_monthly_spend > 0"
                    ),
                    {"ids": [big.removeprefix("customers/"), small.removeprefix("customers/")]},
                )
                if scored.scalar_one() == 2:
                    break
            await asyncio.sleep(0.05)
    threshold = await rank_vip(customer_database, SYSTEM_CLOCK)
    assert threshold is not None and threshold <= 900_000_000
    found = await segments_when(segments, big, lambda s: "segments/value-vip" in s)
    assert found["segments/value-vip"].rule == "value.top_share"
    small_segments = await segments_when(segments, small, lambda s: True)
    assert "segments/value-vip" not in small_segments


# Dimensions and descriptions -----------------------------------------------------------------------


async def test_filtering_by_the_dimension_a_listed_segment_reports_returns_that_segment(
    customer_stub: CustomerServiceStub, segments: SegmentServiceStub
):
    customer = await ported_customer_of_30_with_a_4_year_line(customer_stub, "Buxoro viloyati")
    await segments_when(segments, customer, lambda s: "segments/churned-to-competitor" in s)
    listed = await segments.ListSegments(segments_pb2.ListSegmentsRequest(), timeout=5)
    assert listed.segments
    for segment in listed.segments:
        filtered = await segments.ListSegments(segments_pb2.ListSegmentsRequest(dimension=segment.dimension), timeout=5)
        assert segment.name in {s.name for s in filtered.segments}
        assert {s.dimension for s in filtered.segments} == {segment.dimension}


async def test_every_segment_of_a_customer_is_listed_under_exactly_one_dimension(
    customer_stub: CustomerServiceStub, segments: SegmentServiceStub
):
    customer = await ported_customer_of_30_with_a_4_year_line(customer_stub, "Navoiy viloyati")
    found = await segments_when(segments, customer, lambda s: "segments/churned-to-competitor" in s)
    by_dimension = await listed_by_dimension(segments)
    assert {segment: len(by_dimension.get(segment, [])) for segment in found} == dict.fromkeys(found, 1)


async def test_churned_to_competitor_is_listed_by_its_own_dimension(
    customer_stub: CustomerServiceStub, segments: SegmentServiceStub
):
    customer = await ported_customer_of_30_with_a_4_year_line(customer_stub, "Xorazm viloyati")
    await segments_when(segments, customer, lambda s: "segments/churned-to-competitor" in s)
    listed = await segments.ListSegments(
        segments_pb2.ListSegmentsRequest(dimension=segments_pb2.SEGMENT_DIMENSION_CHURNED), timeout=5
    )
    churned = {s.name: s for s in listed.segments}["segments/churned-to-competitor"]
    assert churned.dimension == segments_pb2.SEGMENT_DIMENSION_CHURNED
    assert churned.member_count >= 1


async def test_age_tenure_and_region_segments_are_described_in_words(
    customer_stub: CustomerServiceStub, segments: SegmentServiceStub
):
    customer = await ported_customer_of_30_with_a_4_year_line(customer_stub, "Fargʻona viloyati")
    await segments_when(segments, customer, lambda s: "segments/tenure-3-5" in s)
    listed = await segments.ListSegments(segments_pb2.ListSegmentsRequest(), timeout=5)
    descriptions = {s.name: s.description for s in listed.segments}
    assert descriptions["segments/age-25-35"] == "Aged 25 to 34"
    assert descriptions["segments/tenure-3-5"] == "Customer for 3 to 4 years"
    assert descriptions["segments/region-fargona-viloyati"] == "Home region: Fargona Viloyati"


async def test_listing_without_a_dimension_returns_segments_of_every_dimension_with_members(
    customer_stub: CustomerServiceStub, segments: SegmentServiceStub
):
    customer = await ported_customer_of_30_with_a_4_year_line(customer_stub, "Sirdaryo viloyati")
    found = await segments_when(segments, customer, lambda s: "segments/churned-to-competitor" in s)
    listed = await segments.ListSegments(segments_pb2.ListSegmentsRequest(), timeout=5)
    assert set(found) <= {s.name for s in listed.segments}
    assert len({s.dimension for s in listed.segments}) > 1


async def test_an_unknown_dimension_number_is_invalid_argument_on_dimension(segments: SegmentServiceStub):
    code, error = await failure(
        segments.ListSegments(segments_pb2.ListSegmentsRequest(dimension=99), timeout=5)  # type: ignore[arg-type]
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == ["dimension"]  # type: ignore[attr-defined]


async def test_an_explicitly_unspecified_dimension_is_invalid_argument_on_dimension(segments: SegmentServiceStub):
    code, error = await failure(
        segments.ListSegments(
            segments_pb2.ListSegmentsRequest(dimension=segments_pb2.SEGMENT_DIMENSION_UNSPECIFIED), timeout=5
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == ["dimension"]  # type: ignore[attr-defined]


# Erasure -------------------------------------------------------------------------------------------


async def test_erasure_takes_the_customer_out_of_every_segment_at_once(
    customer_stub: CustomerServiceStub, segments: SegmentServiceStub
):
    birth = TODAY.replace(year=TODAY.year - 40)
    created = await customer_stub.CreateCustomer(
        create_request(person(region="Jizzax viloyati", birth=(birth.year, birth.month, birth.day))), timeout=5
    )
    await segments_when(segments, created.name, lambda s: "segments/region-jizzax-viloyati" in s)
    await customer_stub.EraseCustomer(
        customer_service_pb2.EraseCustomerRequest(name=created.name, request_id=request_id()), timeout=5
    )
    answer = await segments.GetCustomerSegments(
        segments_pb2.GetCustomerSegmentsRequest(name=f"{created.name}/segments"), timeout=5
    )
    assert list(answer.memberships) == [] and not answer.HasField("evaluate_time")
    members = await segments.ListSegmentMembers(
        segments_pb2.ListSegmentMembersRequest(segment="segments/region-jizzax-viloyati"), timeout=5
    )
    assert created.name not in members.customers
