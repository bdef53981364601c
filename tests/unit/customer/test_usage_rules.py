"""Rules of usage records and profiles, without a server or a database."""

import math
from datetime import date

import pytest

from chassis.errors import InvalidArgument
from services.customer.usage import rules

TODAY = date(2026, 11, 23)


def check(**overrides: object) -> rules.CheckedRecord | rules.Rejection:
    values: dict[str, object] = {
        "record_id": "r-1",
        "msisdn": "+998901234567",
        "year": 2026,
        "month": 11,
        "day": 20,
        "on_net_minutes": 3.0,
        "off_net_minutes": 1.0,
        "international_minutes": 0.0,
        "sms_count": 2,
        "data_mb": 10.0,
        "roaming": False,
        "area": " Toshkent ",
        "radio_technology": 3,
    }
    values.update(overrides)
    record = rules.ReportedRecord(**values)  # type: ignore[arg-type]  # the overrides hold each field's type
    return rules.check_record(record, default_region="UZ", today=TODAY)


def test_a_good_record_is_accepted_with_its_values_normalised():
    result = check()
    assert isinstance(result, rules.CheckedRecord)
    assert (result.msisdn, result.usage_date, result.area, result.radio_technology) == (
        "+998901234567",
        date(2026, 11, 20),
        "Toshkent",
        "4G",
    )


def test_a_national_number_is_read_in_the_default_region():
    result = check(msisdn="90 123 45 67")
    assert isinstance(result, rules.CheckedRecord) and result.msisdn == "+998901234567"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"record_id": ""}, "MISSING_RECORD_ID"),
        ({"record_id": "x" * 129}, "MISSING_RECORD_ID"),
        ({"msisdn": "12"}, "INVALID_MSISDN"),
        ({"month": 2, "day": 30}, "INVALID_DATE"),
        ({"year": 0, "month": 0, "day": 0}, "INVALID_DATE"),
        ({"day": 24}, "FUTURE_DATE"),
        ({"data_mb": -0.5}, "INVALID_VALUE"),
        ({"on_net_minutes": math.nan}, "INVALID_VALUE"),
        ({"off_net_minutes": math.inf}, "INVALID_VALUE"),
        ({"sms_count": -1}, "INVALID_VALUE"),
        ({"radio_technology": 9}, "INVALID_VALUE"),
    ],
)
def test_a_bad_record_is_rejected_with_its_reason(overrides: dict[str, object], reason: str):
    result = check(**overrides)
    assert isinstance(result, rules.Rejection) and result.reason == reason


def test_an_unspecified_technology_is_accepted_as_unknown():
    result = check(radio_technology=0, area="")
    assert isinstance(result, rules.CheckedRecord)
    assert (result.radio_technology, result.area) == ("unknown", "unknown")


@pytest.mark.parametrize(("requested", "months"), [(0, 6), (1, 1), (36, 36), (37, None), (-1, None)])
def test_profile_length_defaults_to_six_and_is_capped(requested: int, months: int | None):
    assert rules.profile_months(requested) == months


@pytest.mark.parametrize(
    ("today", "months", "first"),
    [
        (date(2026, 11, 23), 1, date(2026, 11, 1)),
        (date(2026, 11, 23), 6, date(2026, 6, 1)),
        (date(2026, 2, 10), 3, date(2025, 12, 1)),
        (date(2026, 1, 31), 13, date(2025, 1, 1)),
    ],
)
def test_a_profile_starts_on_the_first_day_of_its_earliest_month(today: date, months: int, first: date):
    assert rules.first_month(today, months) == first


# Batches and the tally of a stream ------------------------------------------------------------------


def reported(record_id: str = "r-1", msisdn: str = "+998901234567", day: int = 20) -> rules.ReportedRecord:
    return rules.ReportedRecord(record_id, msisdn, 2026, 11, day, 3.0, 1.0, 0.0, 2, 10.0, False, "Toshkent", 3)


def test_a_batch_keeps_each_record_id_once_and_counts_the_repeats() -> None:
    batch = rules.check_batch([reported("a"), reported("b"), reported("a")], default_region="UZ", today=TODAY)
    assert [r.record_id for r in batch.records] == ["a", "b"]
    assert (batch.repeats, batch.rejections) == (1, [])


def test_a_batch_sets_refused_records_aside_with_their_reasons() -> None:
    batch = rules.check_batch([reported("a"), reported("b", day=30)], default_region="UZ", today=TODAY)
    assert [r.record_id for r in batch.records] == ["a"]
    assert [(r.record_id, r.reason) for r in batch.rejections] == [("b", "FUTURE_DATE")]


def test_a_batch_larger_than_the_limit_is_invalid() -> None:
    records = [reported(f"r-{n}") for n in range(rules.MAX_BATCH_RECORDS + 1)]
    with pytest.raises(InvalidArgument) as raised:
        rules.check_batch(records, default_region="UZ", today=TODAY)
    assert [v.field for v in raised.value.violations] == ["records"]


def test_the_tally_counts_new_records_as_accepted_and_the_rest_as_duplicates() -> None:
    batch = rules.check_batch(
        [reported("a"), reported("b"), reported("c"), reported("a")], default_region="UZ", today=TODAY
    )
    tally = rules.IngestTally()
    tally.count_batch(batch, stored=1, unknown_msisdns=[])
    assert (tally.accepted, tally.duplicates, tally.rejected) == (1, 3, 0)


def test_the_tally_refuses_records_of_numbers_no_line_in_service_has() -> None:
    batch = rules.check_batch(
        [reported("a"), reported("b", msisdn="+998911234567"), reported("c", day=31)], default_region="UZ", today=TODAY
    )
    tally = rules.IngestTally()
    tally.count_batch(batch, stored=1, unknown_msisdns={"+998911234567"})
    assert (tally.accepted, tally.duplicates, tally.rejected) == (1, 0, 2)
    assert [(r.record_id, r.reason) for r in tally.rejections] == [("c", "INVALID_DATE"), ("b", "UNKNOWN_MSISDN")]


def test_the_tally_keeps_only_the_first_reasons_but_counts_every_refusal() -> None:
    tally = rules.IngestTally()
    for n in range(rules.MAX_REPORTED_REJECTIONS + 5):
        tally.reject(rules.Rejection(f"r-{n}", "INVALID_VALUE", "bad"))
    assert tally.rejected == rules.MAX_REPORTED_REJECTIONS + 5
    assert len(tally.rejections) == rules.MAX_REPORTED_REJECTIONS
    assert tally.rejections[-1].record_id == f"r-{rules.MAX_REPORTED_REJECTIONS - 1}"
