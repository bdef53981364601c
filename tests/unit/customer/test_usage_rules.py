"""Rules of usage records and profiles, without a server or a database."""

import math
import sys
from datetime import date, timedelta

import pytest

from chassis.errors import InvalidArgument
from services.customer.usage import rules

TODAY = date(2026, 11, 23)
KEPT_SINCE = date(2026, 8, 25)


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
    return rules.check_record(record, default_region="UZ", today=TODAY, kept_since=KEPT_SINCE)


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


def batch_of(records: list[rules.ReportedRecord]) -> rules.CheckedBatch:
    return rules.check_batch(records, default_region="UZ", today=TODAY, kept_since=KEPT_SINCE)


def test_a_batch_keeps_each_record_id_once_and_counts_the_repeats() -> None:
    batch = batch_of([reported("a"), reported("b"), reported("a")])
    assert [r.record_id for r in batch.records] == ["a", "b"]
    assert (batch.repeats, batch.rejections) == (1, [])


def test_a_batch_sets_refused_records_aside_with_their_reasons() -> None:
    batch = batch_of([reported("a"), reported("b", day=30)])
    assert [r.record_id for r in batch.records] == ["a"]
    assert [(r.record_id, r.reason) for r in batch.rejections] == [("b", "FUTURE_DATE")]


def test_a_batch_larger_than_the_limit_is_invalid() -> None:
    records = [reported(f"r-{n}") for n in range(rules.MAX_BATCH_RECORDS + 1)]
    with pytest.raises(InvalidArgument) as raised:
        batch_of(records)
    assert [v.field for v in raised.value.violations] == ["records"]


def test_the_tally_counts_new_records_as_accepted_and_the_rest_as_duplicates() -> None:
    batch = batch_of([reported("a"), reported("b"), reported("c"), reported("a")])
    tally = rules.IngestTally()
    tally.count_batch(batch, stored=1, unknown_msisdns=[])
    assert (tally.accepted, tally.duplicates, tally.rejected) == (1, 3, 0)


def test_the_tally_refuses_records_of_numbers_no_line_in_service_has() -> None:
    batch = batch_of([reported("a"), reported("b", msisdn="+998911234567"), reported("c", day=31)])
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


# Days kept, NUL, and the batch as the store checks it ---------------------------------------------


def test_a_record_of_a_day_before_the_kept_days_is_expired() -> None:
    older = KEPT_SINCE - timedelta(days=1)
    result = check(year=older.year, month=older.month, day=older.day)
    assert isinstance(result, rules.Rejection) and result.reason == "EXPIRED_DATE"
    assert isinstance(check(year=KEPT_SINCE.year, month=KEPT_SINCE.month, day=KEPT_SINCE.day), rules.CheckedRecord)


@pytest.mark.parametrize("overrides", [{"record_id": "r\x00"}, {"area": "Tosh\x00kent"}])
def test_nul_in_a_record_id_or_area_is_an_invalid_value(overrides: dict[str, object]) -> None:
    result = check(**overrides)
    assert isinstance(result, rules.Rejection) and result.reason == "INVALID_VALUE"


def test_a_record_id_sent_again_for_another_day_is_another_record() -> None:
    batch = batch_of([reported("a", day=20), reported("a", day=21), reported("a", day=20)])
    assert [(r.record_id, r.usage_date.day) for r in batch.records] == [("a", 20), ("a", 21)]
    assert batch.repeats == 1


def test_the_whitespace_trimmed_in_sql_is_what_strip_removes() -> None:
    assert set(rules.WHITESPACE) == {chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace()}


CHECKS = rules.RecordChecks("UZ", TODAY, KEPT_SINCE)


def fields(record: rules.ReportedRecord) -> rules.ReportedFields:
    return tuple(record)  # type: ignore[return-value]  # a ReportedRecord's fields in their order


def test_staging_lists_each_number_not_written_in_e164_once_with_its_e164_form() -> None:
    rows = [fields(reported(msisdn=m)) for m in ("+998901234567", "90 123 45 67", "90 123 45 67", "12")]
    staged = rules.stage_batch(rows, CHECKS)
    assert staged.numbers == {"90 123 45 67": "+998901234567", "12": None}
    assert list(staged.rows) == rows


def test_staging_settles_records_with_nul_by_the_rules() -> None:
    refused = fields(reported("bad\x00id"))
    readable = fields(reported("ok", msisdn="+998901234567\x00"))
    plain = fields(reported("plain"))
    staged = rules.stage_batch([refused, readable, plain], CHECKS)
    # The refused one goes without a record id (refused by the store too); the number read past NUL in E.164.
    assert [row[:2] for row in staged.rows] == [("", ""), ("ok", "+998901234567"), ("plain", "+998901234567")]
    assert all("\x00" not in number for number in staged.numbers)


def test_a_stored_batch_is_counted_as_the_rules_count_it() -> None:
    records = [reported("a"), reported("b", day=30), reported("c", msisdn="+998911234567"), reported("a")]
    checked = batch_of(records)
    expected = rules.IngestTally()
    expected.count_batch(checked, stored=1, unknown_msisdns={"+998911234567"})
    stored = rules.StoredBatch(stored=1, refused=[1], unmatched=[2], passed=2, repeats=1)
    tally = rules.IngestTally()
    tally.count_stored([fields(r) for r in records], stored, CHECKS)
    assert tally == expected


def test_a_stored_batch_reads_reasons_only_while_they_are_kept() -> None:
    rows = [fields(reported(f"r-{n}", day=30)) for n in range(rules.MAX_BATCH_RECORDS)]
    checks_made: list[rules.ReportedRecord] = []

    class CountingChecks(rules.RecordChecks):
        def check(self, record: rules.ReportedRecord) -> rules.CheckedRecord | rules.Rejection:
            checks_made.append(record)
            return super().check(record)

    stored = rules.StoredBatch(stored=0, refused=range(len(rows)), unmatched=[], passed=0, repeats=0)
    tally = rules.IngestTally()
    tally.count_stored(rows, stored, CountingChecks("UZ", TODAY, KEPT_SINCE))
    assert (tally.rejected, len(tally.rejections)) == (rules.MAX_BATCH_RECORDS, rules.MAX_REPORTED_REJECTIONS)
    assert len(checks_made) == rules.MAX_REPORTED_REJECTIONS
