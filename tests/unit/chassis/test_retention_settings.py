"""How long the chassis keeps its tables' rows: read per service from `<PREFIX>_DATABASE_...`, with
defaults that keep a request id a week and an event a month, and which jobs a service gets."""

from collections.abc import Callable

import pytest

from chassis.database import Database, create_engine
from chassis.retention import outbox_local_readers_ddl, retention_jobs
from chassis.settings import DatabaseSettings, Environment, RetentionSettings, SettingsError
from services.customer.settings import CustomerSettings
from services.loyalty.settings import LoyaltySettings

DATABASE_URL = "postgresql://crm:secret@127.0.0.1:5432/customer"


def _failing_variable(read: Callable[[], object]) -> str:
    with pytest.raises(SettingsError) as raised:
        read()
    return raised.value.variable


def test_by_default_request_ids_are_kept_a_week_and_events_a_month() -> None:
    retention = CustomerSettings.from_environment(
        Environment({"CUSTOMER_DATABASE_URL": DATABASE_URL})
    ).database.retention
    assert retention == RetentionSettings()
    assert retention.request_id_retention_seconds == 7 * 24 * 3600
    assert retention.outbox_retention_seconds == 30 * 24 * 3600
    assert (retention.applied_events_margin, retention.prune_interval_seconds, retention.prune_batch_size) == (
        100_000,
        300.0,
        1000,
    )


def test_each_service_reads_its_own_retention_variables() -> None:
    env = Environment(
        {
            "LOYALTY_DATABASE_URL": DATABASE_URL,
            "LOYALTY_DATABASE_REQUEST_ID_RETENTION_SECONDS": "86400",
            "LOYALTY_DATABASE_OUTBOX_RETENTION_SECONDS": "3600",
            "LOYALTY_DATABASE_APPLIED_EVENTS_MARGIN": "500",
            "LOYALTY_DATABASE_PRUNE_INTERVAL_SECONDS": "60",
            "LOYALTY_DATABASE_PRUNE_BATCH_SIZE": "250",
            "CUSTOMER_DATABASE_REQUEST_ID_RETENTION_SECONDS": "7200",
        }
    )
    assert LoyaltySettings.from_environment(env).database.retention == RetentionSettings(
        request_id_retention_seconds=86400,
        outbox_retention_seconds=3600,
        applied_events_margin=500,
        prune_interval_seconds=60,
        prune_batch_size=250,
    )


def test_a_request_id_retention_shorter_than_an_hour_names_its_variable() -> None:
    env = Environment({"CUSTOMER_DATABASE_URL": DATABASE_URL, "CUSTOMER_DATABASE_REQUEST_ID_RETENTION_SECONDS": "60"})
    assert (
        _failing_variable(lambda: CustomerSettings.from_environment(env))
        == "CUSTOMER_DATABASE_REQUEST_ID_RETENTION_SECONDS"
    )


def test_a_batch_of_no_rows_names_its_variable() -> None:
    env = Environment({"CUSTOMER_DATABASE_URL": DATABASE_URL, "CUSTOMER_DATABASE_PRUNE_BATCH_SIZE": "0"})
    assert _failing_variable(lambda: CustomerSettings.from_environment(env)) == "CUSTOMER_DATABASE_PRUNE_BATCH_SIZE"


@pytest.mark.parametrize(
    ("outbox", "applied_events", "jobs"),
    [
        (False, False, ["prune-request-ids"]),
        (True, False, ["prune-request-ids", "prune-outbox"]),
        (True, True, ["prune-request-ids", "prune-applied-events", "prune-outbox"]),
    ],
)
def test_request_ids_are_always_pruned_the_outbox_by_a_producer_applied_ids_by_a_consumer(
    outbox: bool, applied_events: bool, jobs: list[str]
) -> None:
    # Building the engine opens no connection.
    database = Database(create_engine(DatabaseSettings(url=DATABASE_URL), application_name="unit"))
    found = retention_jobs(database, _NoClock(), RetentionSettings(), outbox=outbox, applied_events=applied_events)
    assert [job.name for job in found] == jobs


def test_a_local_reader_whose_position_is_missing_counts_as_having_read_nothing() -> None:
    ddl = outbox_local_readers_ddl({"it's-reader": "SELECT position FROM reader_state"})
    assert ddl == (
        "CREATE OR REPLACE VIEW outbox_local_readers AS "
        "SELECT 'it''s-reader'::text AS reader, coalesce((SELECT position FROM reader_state), 0)::bigint AS position"
    )


class _NoClock:
    def now(self) -> object:
        raise AssertionError("no job runs here")
