"""The complaints service's resource names (AIP-122), each pattern written once."""

from chassis.names import ResourcePattern

COMPLAINT = ResourcePattern("complaints/{complaint}")
"""A ticket."""
NOTE = ResourcePattern("complaints/{complaint}/notes/{note}")
"""A note on a ticket, numbered per ticket."""
HISTORY_ENTRY = ResourcePattern("complaints/{complaint}/history/{entry}")
"""One change of a ticket, numbered per ticket."""
DEPARTMENT = ResourcePattern("departments/{department}")
"""A department that works tickets."""
AGENT = ResourcePattern("departments/{department}/agents/{agent}")
"""An agent of a department."""
ROUTING_RULE = ResourcePattern("routingRules/{rule}")
"""A routing rule."""
LOYALTY_ACCOUNT = ResourcePattern("accounts/{account}")
"""A customer's loyalty account; its id is the customer's."""
