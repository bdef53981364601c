"""Settings of the usage part, read from `CUSTOMER_USAGE_*` environment variables.

The part reads them itself, once, when the service is assembled (`UsageProfiles` and the background
upkeep take them from here unless handed them), so that it needs nothing from the service's own
settings; they can become a nested field of the service's settings without changing a variable name.
"""

from dataclasses import dataclass

from chassis.settings import FromEnvironment, at_least, between, setting


@dataclass(frozen=True, kw_only=True)
class UsageSettings(FromEnvironment):
    """How long raw usage records are kept, and the upkeep of their daily partitions."""

    PREFIX = "CUSTOMER_USAGE"

    record_retention_days: int = setting(90, reader=between(1, 3660))
    """Days of raw usage records kept (`CUSTOMER_USAGE_RECORD_RETENTION_DAYS`): records of earlier days
    are refused as EXPIRED_DATE, and a day's partition is dropped once all of it is folded into the
    monthly profiles (which stay)."""
    partitions_ahead_days: int = setting(3, reader=between(1, 366))
    """Days after today whose partitions already exist (`CUSTOMER_USAGE_PARTITIONS_AHEAD_DAYS`), so that
    no day starts without one even when the upkeep could not run for a while."""
    partition_upkeep_interval_seconds: float = setting(3600.0, reader=at_least(1.0))
    """How often, by the service's clock, partitions are made ahead and expired ones dropped
    (`CUSTOMER_USAGE_PARTITION_UPKEEP_INTERVAL_SECONDS`); again at once while a run left work over."""
