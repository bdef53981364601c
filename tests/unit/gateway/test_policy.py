"""The access policy is data checked at start: the repository's file covers every method the gateway
serves, and a mistake in a policy stops the gateway with the offending line."""

from pathlib import Path

import pytest

from gateway.app import contract_messages, guarded_methods
from gateway.policy import PolicyError, RetailerCheck, load_policy
from gateway.settings import DEFAULT_POLICY_FILE

GOOD = DEFAULT_POLICY_FILE.read_text()


def load(text: str, tmp_path: Path):
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return load_policy(path, guarded_methods(), contract_messages())


def error_of(text: str, tmp_path: Path) -> str:
    with pytest.raises(PolicyError) as refused:
        load(text, tmp_path)
    return str(refused.value)


def line_of(text: str, needle: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_the_repository_policy_has_an_entry_for_every_method_the_gateway_serves(tmp_path: Path) -> None:
    policy = load(GOOD, tmp_path)
    assert set(policy.methods) == set(guarded_methods())


def test_an_exposed_method_missing_from_the_policy_stops_the_gateway(tmp_path: Path) -> None:
    header = '[methods."crm.loyalty.v1.LoyaltyService/EarnPoints"]'
    start = GOOD.index(header)
    end = GOOD.index("[methods.", start + len(header))
    message = error_of(GOOD[:start] + GOOD[end:], tmp_path)
    assert "exposed methods without an entry: crm.loyalty.v1.LoyaltyService/EarnPoints" in message


def test_an_unknown_method_is_refused_with_its_line(tmp_path: Path) -> None:
    text = GOOD + '\n[methods."crm.loyalty.v1.LoyaltyService/MintPoints"]\nemployees = ["admin"]\n'
    message = error_of(text, tmp_path)
    assert f":{line_of(text, 'MintPoints')}: " in message
    assert "is not a method the gateway exposes" in message


def test_an_unknown_role_is_refused_with_its_line(tmp_path: Path) -> None:
    text = GOOD.replace(
        '[methods."crm.loyalty.v1.LoyaltyService/EarnPoints"]\nemployees = ["back-office", "admin"]',
        '[methods."crm.loyalty.v1.LoyaltyService/EarnPoints"]\nemployees = ["back-office", "intern"]',
    )
    message = error_of(text, tmp_path)
    assert f":{line_of(text, 'LoyaltyService/EarnPoints')}: " in message
    assert "unknown roles ['intern']" in message


def test_a_resource_field_the_request_does_not_have_is_refused(tmp_path: Path) -> None:
    earn = '[methods."crm.loyalty.v1.LoyaltyService/EarnPoints"]\nemployees = ["back-office", "admin"]\n'
    text = GOOD.replace(earn + 'resource = "account"', earn + 'resource = "acount"')
    assert "EarnPointsRequest has no text field 'acount'" in error_of(text, tmp_path)


def test_an_unknown_key_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace('resource = "account"\nlimit', 'resource = "account"\nmax_points = 5\nlimit', 1)
    assert "unknown keys ['max_points']" in error_of(text, tmp_path)


def test_a_masked_field_that_is_not_in_the_contract_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace('"crm.customer.v1.Subscription.msisdn"', '"crm.customer.v1.Subscription.phone"')
    assert "crm.customer.v1.Subscription.phone is not a field of the contract" in error_of(text, tmp_path)


def test_a_toml_syntax_error_names_its_line(tmp_path: Path) -> None:
    assert "line 3" in error_of("[customers]\nvisible_segments = []\n[methods\n", tmp_path)


def test_the_partner_checks_and_limits_are_read(tmp_path: Path) -> None:
    policy = load(GOOD, tmp_path)
    search = policy.methods["/crm.customer.v1.CustomerService/SearchCustomers"]
    goodwill = policy.methods["/crm.loyalty.v1.LoyaltyService/GrantGoodwill"]
    assert search.retailer_check is RetailerCheck.PHONE_LOOKUP and search.retailers and not search.customers
    assert goodwill.limit is not None and goodwill.limit.above == 1000
    assert goodwill.limit.roles == {"supervisor", "admin"}


def test_customers_see_their_usage_and_type_segments_but_not_debt_or_churn_risk(tmp_path: Path) -> None:
    policy = load(GOOD, tmp_path)
    assert policy.segment_visible_to_customer("usage-data-heavy")
    assert policy.segment_visible_to_customer("type-consumer")
    assert not policy.segment_visible_to_customer("debtor")
    assert not policy.segment_visible_to_customer("churn-risk-high")
    assert not policy.segment_visible_to_customer("value-vip")


def test_reads_and_changes_are_told_apart_for_the_audit(tmp_path: Path) -> None:
    policy = load(GOOD, tmp_path)
    assert policy.methods["/crm.loyalty.v1.LoyaltyService/EarnPoints"].mutates
    assert not policy.methods["/crm.customer.v1.CustomerService/SearchCustomers"].mutates
    assert not policy.methods["/crm.gateway.v1.AuditService/ListAuditRecords"].mutates
