"""Typed settings from environment variables: defaults when unset, and a missing or malformed value
stops the start with an error that names the variable."""

from collections.abc import Callable

import pytest

from chassis.settings import DatabaseSettings, Environment, ServerSettings, SettingsError
from services.customer.settings import DEFAULT_ADDRESS, CustomerSettings
from services.loyalty.settings import LoyaltySettings

DATABASE_URL = "postgresql://crm:secret@127.0.0.1:5432/customer"


def _failing_variable(read: Callable[[], object]) -> str:
    with pytest.raises(SettingsError) as raised:
        read()
    return raised.value.variable


# Environment.text ----------------------------------------------------------------------------------


def test_missing_required_text_names_the_variable() -> None:
    assert _failing_variable(lambda: Environment({}).text("CRM_TENANT")) == "CRM_TENANT"


def test_blank_required_text_counts_as_missing() -> None:
    assert _failing_variable(lambda: Environment({"CRM_TENANT": "   "}).text("CRM_TENANT")) == "CRM_TENANT"


def test_settings_error_message_starts_with_the_variable() -> None:
    with pytest.raises(SettingsError) as raised:
        Environment({}).text("CRM_TENANT")
    assert str(raised.value).startswith("CRM_TENANT:")


def test_text_default_applies_when_unset() -> None:
    assert Environment({}).text("CRM_TENANT", "default-tenant") == "default-tenant"


def test_text_is_trimmed() -> None:
    assert Environment({"CRM_TENANT": "  acme \n"}).text("CRM_TENANT", "x") == "acme"


# Environment.integer and seconds -------------------------------------------------------------------


def test_integer_default_applies_when_unset() -> None:
    assert Environment({}).integer("POOL", 10) == 10


def test_integer_is_read_when_set() -> None:
    assert Environment({"POOL": " 25 "}).integer("POOL", 10) == 25


@pytest.mark.parametrize("raw", ["ten", "2.5", "1e3", "0x10"])
def test_malformed_integer_names_the_variable(raw: str) -> None:
    assert _failing_variable(lambda: Environment({"POOL": raw}).integer("POOL", 10)) == "POOL"


@pytest.mark.parametrize("raw", ["0", "1001"])
def test_integer_out_of_range_names_the_variable(raw: str) -> None:
    assert _failing_variable(lambda: Environment({"POOL": raw}).integer("POOL", 10, minimum=1, maximum=1000)) == "POOL"


def test_seconds_default_applies_when_unset() -> None:
    assert Environment({}).seconds("GRACE", 10.0) == 10.0


def test_seconds_accept_fractions() -> None:
    assert Environment({"GRACE": "0.25"}).seconds("GRACE", 10.0) == 0.25


@pytest.mark.parametrize("raw", ["soon", "10s", "1,5"])
def test_malformed_seconds_name_the_variable(raw: str) -> None:
    assert _failing_variable(lambda: Environment({"GRACE": raw}).seconds("GRACE", 10.0)) == "GRACE"


def test_seconds_below_the_minimum_name_the_variable() -> None:
    assert _failing_variable(lambda: Environment({"GRACE": "0.05"}).seconds("GRACE", 1.0, minimum=0.1)) == "GRACE"


def test_seconds_that_are_not_a_number_name_the_variable() -> None:
    # float() accepts "nan"; a NaN timeout passes every comparison and fails later, far from its cause.
    assert _failing_variable(lambda: Environment({"GRACE": "nan"}).seconds("GRACE", 1.0, minimum=0.1)) == "GRACE"


# Environment.address and database_url --------------------------------------------------------------


def test_address_default_applies_when_unset() -> None:
    assert Environment({}).address("LISTEN", "127.0.0.1:50051") == "127.0.0.1:50051"


@pytest.mark.parametrize("address", ["0.0.0.0:0", "[::]:50051", "customer.crm.svc:443"])
def test_host_and_port_address_is_accepted(address: str) -> None:
    assert Environment({"LISTEN": address}).address("LISTEN", "127.0.0.1:50051") == address


@pytest.mark.parametrize("address", ["localhost", "localhost:", "localhost:grpc", "localhost:65536", ":50051"])
def test_malformed_address_names_the_variable(address: str) -> None:
    assert _failing_variable(lambda: Environment({"LISTEN": address}).address("LISTEN", "127.0.0.1:1")) == "LISTEN"


@pytest.mark.parametrize(
    "url", [DATABASE_URL, "postgres://crm@db/customer", "postgresql+asyncpg://crm@db:5432/customer"]
)
def test_postgresql_url_is_accepted(url: str) -> None:
    assert Environment({"DB": url}).database_url("DB") == url


def test_missing_database_url_names_the_variable() -> None:
    assert _failing_variable(lambda: Environment({}).database_url("DB")) == "DB"


@pytest.mark.parametrize("url", ["mysql://crm@db/customer", "db:5432/customer", "sqlite:///crm.db"])
def test_non_postgresql_database_url_names_the_variable(url: str) -> None:
    assert _failing_variable(lambda: Environment({"DB": url}).database_url("DB")) == "DB"


# Server and database settings ----------------------------------------------------------------------


def test_server_settings_use_defaults_when_unset() -> None:
    settings = ServerSettings.from_environment(Environment({}), "LOYALTY", "127.0.0.1:50052")
    assert settings == ServerSettings(address="127.0.0.1:50052")


def test_server_settings_read_prefixed_variables() -> None:
    env = Environment(
        {
            "LOYALTY_GRPC_ADDRESS": "0.0.0.0:6000",
            "LOYALTY_MAX_CONCURRENT_RPCS": "64",
            "LOYALTY_MAX_MESSAGE_BYTES": "2048",
            "LOYALTY_SHUTDOWN_GRACE_SECONDS": "2.5",
        }
    )
    assert ServerSettings.from_environment(env, "LOYALTY", "127.0.0.1:50052") == ServerSettings(
        address="0.0.0.0:6000", max_concurrent_rpcs=64, max_message_bytes=2048, shutdown_grace_seconds=2.5
    )


def test_server_settings_refuse_zero_concurrency() -> None:
    env = Environment({"LOYALTY_MAX_CONCURRENT_RPCS": "0"})
    assert (
        _failing_variable(lambda: ServerSettings.from_environment(env, "LOYALTY", "127.0.0.1:1"))
        == "LOYALTY_MAX_CONCURRENT_RPCS"
    )


def test_database_settings_read_pool_size_and_statement_timeout() -> None:
    env = Environment(
        {
            "OFFERS_DATABASE_URL": DATABASE_URL,
            "OFFERS_DATABASE_POOL_SIZE": "4",
            "OFFERS_DATABASE_STATEMENT_TIMEOUT_SECONDS": "1.5",
        }
    )
    assert DatabaseSettings.from_environment(env, "OFFERS") == DatabaseSettings(
        url=DATABASE_URL, pool_size=4, statement_timeout_seconds=1.5
    )


# CustomerSettings ----------------------------------------------------------------------------------


def test_customer_settings_require_the_database_url() -> None:
    assert _failing_variable(lambda: CustomerSettings.from_environment(Environment({}))) == "CUSTOMER_DATABASE_URL"


def test_customer_settings_read_the_database_url() -> None:
    settings = CustomerSettings.from_environment(Environment({"CUSTOMER_DATABASE_URL": DATABASE_URL}))
    assert settings.database.url == DATABASE_URL


def test_customer_settings_listen_on_the_default_address_when_unset() -> None:
    settings = CustomerSettings.from_environment(Environment({"CUSTOMER_DATABASE_URL": DATABASE_URL}))
    assert settings.server.address == DEFAULT_ADDRESS


def test_customer_default_region_is_uzbekistan_when_unset() -> None:
    settings = CustomerSettings.from_environment(Environment({"CUSTOMER_DATABASE_URL": DATABASE_URL}))
    assert settings.default_region == "UZ"


def test_customer_default_region_is_upper_cased() -> None:
    env = Environment({"CUSTOMER_DATABASE_URL": DATABASE_URL, "CUSTOMER_DEFAULT_REGION": "ua"})
    assert CustomerSettings.from_environment(env).default_region == "UA"


@pytest.mark.parametrize("region", ["XX", "UKR", "Ukraine", "1"])
def test_customer_settings_reject_an_unknown_default_region(region: str) -> None:
    env = Environment({"CUSTOMER_DATABASE_URL": DATABASE_URL, "CUSTOMER_DEFAULT_REGION": region})
    assert _failing_variable(lambda: CustomerSettings.from_environment(env)) == "CUSTOMER_DEFAULT_REGION"


def test_customer_settings_reject_a_malformed_grpc_address() -> None:
    env = Environment({"CUSTOMER_DATABASE_URL": DATABASE_URL, "CUSTOMER_GRPC_ADDRESS": "localhost"})
    assert _failing_variable(lambda: CustomerSettings.from_environment(env)) == "CUSTOMER_GRPC_ADDRESS"


# LoyaltySettings -----------------------------------------------------------------------------------


def test_loyalty_settings_need_the_loyalty_database_url() -> None:
    assert _failing_variable(lambda: LoyaltySettings.from_environment(Environment({}))) == "LOYALTY_DATABASE_URL"


def test_loyalty_service_listens_on_50052_unless_told_otherwise() -> None:
    settings = LoyaltySettings.from_environment(Environment({"LOYALTY_DATABASE_URL": DATABASE_URL}))
    assert settings.server.address == "127.0.0.1:50052"
    assert settings.database.url == DATABASE_URL
    moved = LoyaltySettings.from_environment(
        Environment({"LOYALTY_DATABASE_URL": DATABASE_URL, "LOYALTY_GRPC_ADDRESS": "0.0.0.0:6000"})
    )
    assert moved.server.address == "0.0.0.0:6000"
