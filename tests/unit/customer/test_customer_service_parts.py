"""The customer service's parts stay apart: usage could leave as a service of its own, the customers
part never reaches into the parts built on it, rules know no gRPC or database, and servicers reach
the data only through use cases. Read from the modules' imports."""

import ast
from pathlib import Path

import pytest

SERVICE = Path(__file__).parents[3] / "services" / "customer"
PACKAGE = "services.customer"
# Modules above the parts that every part may use: they know no part.
SHARED = {
    f"{PACKAGE}.{name}"
    for name in ("announcements", "personal_data", "phone_numbers", "proto_enums", "request_answers")
}
RULES = [
    "customers/text.py",
    "customers/profile.py",
    "customers/lifecycle.py",
    "customers/lines.py",
    "customers/consent.py",
    "customers/search.py",
    "usage/rules.py",
    "billing/rules.py",
    "segments/catalogue.py",
    "segments/config.py",
    "segments/rules.py",
]
# What rules may not import: they decide in plain Python.
INFRASTRUCTURE = ("grpc", "sqlalchemy", "asyncpg", "google.protobuf", "crm.")


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, by its full name (`from a import b` counts as `a` and `a.b`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def service_imports(part: str) -> set[str]:
    """The customer service's modules the part imports, other than its own."""
    return {
        name
        for path in (SERVICE / part).glob("*.py")
        for name in imported_modules(path)
        if name.startswith(f"{PACKAGE}.") and not name.startswith(f"{PACKAGE}.{part}")
    }


def modules_only(names: set[str]) -> set[str]:
    """The names that are modules of the service (not a class or function imported from one)."""
    return {name for name in names if (SERVICE / f"{name.removeprefix(PACKAGE + '.').replace('.', '/')}.py").exists()}


def test_usage_imports_from_the_other_parts_only_the_customer_lookup() -> None:
    assert modules_only(service_imports("usage")) <= SHARED | {f"{PACKAGE}.customers.lookup"}


def test_billing_imports_from_the_other_parts_only_the_customer_lookup() -> None:
    assert modules_only(service_imports("billing")) <= SHARED | {f"{PACKAGE}.customers.lookup"}


def test_the_customers_part_imports_no_other_part_and_not_the_erasure_above_the_parts() -> None:
    assert modules_only(service_imports("customers")) <= SHARED


@pytest.mark.parametrize("module", RULES)
def test_rules_know_no_grpc_database_or_contract(module: str) -> None:
    imports = imported_modules(SERVICE / module)
    assert not {name for name in imports if name.startswith(INFRASTRUCTURE)}


@pytest.mark.parametrize("part", ["customers", "usage", "billing", "segments"])
def test_a_servicer_reaches_the_data_only_through_use_cases(part: str) -> None:
    imports = imported_modules(SERVICE / part / "servicer.py")
    assert not {name for name in imports if name.endswith(".store") or ".store." in name}
