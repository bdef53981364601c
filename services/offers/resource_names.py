"""The offers service's resource names (AIP-122), each pattern written once and used both to build
names and to parse them."""

from chassis.errors import invalid_field
from chassis.names import ResourcePattern
from services.offers.catalog import COLLECTIONS, OfferingKind

PLAN = ResourcePattern("plans/{plan}")
"""A tariff plan; its name is what a line of the customer service holds as `tariff_plan_id`."""
BUNDLE = ResourcePattern("bundles/{bundle}")
"""An add-on bundle."""
COVERAGE = ResourcePattern("coverage")
"""The coverage data in force (a singleton)."""
RECOMMENDATION = ResourcePattern("tariffRecommendations/{recommendation}")
"""Tariff advice given to a line, kept as evidence."""
PLAN_CHANGE = ResourcePattern("planChanges/{plan_change}")
"""A change of a line's plan."""

_PATTERNS = {OfferingKind.TARIFF_PLAN: PLAN, OfferingKind.ADD_ON_BUNDLE: BUNDLE}


def offering_name(name: str, field: str = "name") -> str:
    """`name` checked as `plans/{plan}` or `bundles/{bundle}`; INVALID_ARGUMENT naming `field` otherwise."""
    for kind, pattern in _PATTERNS.items():
        if name.startswith(COLLECTIONS[kind] + "/"):
            pattern.parse_slug(name, field)
            return name
    raise invalid_field(field, f"must look like plans/{{plan}} or bundles/{{bundle}}, got {name!r}")


def plan_name(name: str, field: str) -> str:
    """`name` checked as `plans/{plan}`."""
    PLAN.parse_slug(name, field)
    return name


ACTION_RULE = ResourcePattern("actionRules/{rule}")
"""A rule that makes a next-best action a candidate."""
CONTACT_POLICY = ResourcePattern("contactPolicy")
"""The contact policy in force (a singleton)."""
OFFER_PRESENTATION = ResourcePattern("offerPresentations/{presentation}")
"""An action put to a customer and what became of it."""
