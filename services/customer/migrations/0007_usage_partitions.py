"""Usage records partitioned by day, in a schema of their own; the records so far become the partition
of every day before the first daily one. Monthly profiles leave room on their pages for updates.

The key becomes (record_id, usage_date): PostgreSQL enforces a unique index on a partitioned table only
when it holds the partition key. A replay of a record (the same record sent again, its day included)
is still counted once; a record id reused for another day is another record. The fold order is kept:
the records so far keep their sequence numbers, and new ones continue after them.

Revision ID: 0007
Revises: 0006
"""

from datetime import date, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SCHEMA = "usage_partitions"
# Days after the migration's whose partitions exist at once; the service's upkeep keeps them ahead.
_DAYS_AHEAD = 3
_COLUMNS = """
    record_id text NOT NULL,
    subscription_id uuid NOT NULL,
    customer_id uuid NOT NULL,
    usage_date date NOT NULL,
    on_net_minutes double precision NOT NULL,
    off_net_minutes double precision NOT NULL,
    international_minutes double precision NOT NULL,
    sms_count bigint NOT NULL,
    data_mb double precision NOT NULL,
    roaming boolean NOT NULL,
    area text NOT NULL,
    radio_technology text NOT NULL,
    ingest_xid xid8 NOT NULL DEFAULT pg_current_xact_id()
"""


def upgrade() -> None:
    connection = op.get_bind()
    # Every day up to today's, and any later one a record already has, stays with the records so far.
    first_daily: date = connection.execute(
        sa.text(
            "SELECT greatest(today, coalesce((SELECT max(usage_date) FROM usage_records), today)) + 1 "
            "FROM (SELECT (now() AT TIME ZONE 'UTC')::date AS today) AS utc"
        )
    ).scalar_one()
    earlier = f"usage_records_before_{first_daily:%Y%m%d}"
    op.execute(f"CREATE SCHEMA {SCHEMA}")
    op.execute(f"ALTER TABLE usage_records SET SCHEMA {SCHEMA}")
    op.execute(f"ALTER TABLE {SCHEMA}.usage_records RENAME TO {earlier}")
    # Its key becomes the partitioned table's; a key of the id alone would refuse what the new key allows.
    op.execute(f"ALTER TABLE {SCHEMA}.{earlier} DROP CONSTRAINT usage_records_pkey")
    op.execute(f"ALTER INDEX {SCHEMA}.usage_records_fold_order RENAME TO {earlier}_fold_order")
    op.execute(f"ALTER TABLE {SCHEMA}.{earlier} ALTER COLUMN seq DROP IDENTITY")
    # One sequence for every partition; a backend takes numbers in blocks (only their order within one
    # inserting transaction matters to the folder).
    op.execute("CREATE SEQUENCE usage_records_seq CACHE 1000")
    op.execute(f"SELECT setval('usage_records_seq', coalesce((SELECT max(seq) FROM {SCHEMA}.{earlier}), 0) + 1, false)")
    op.execute(
        f"""
        CREATE TABLE usage_records (
            {_COLUMNS},
            seq bigint NOT NULL DEFAULT nextval('usage_records_seq'),
            PRIMARY KEY (record_id, usage_date)
        ) PARTITION BY RANGE (usage_date)
        """
    )
    op.execute("ALTER SEQUENCE usage_records_seq OWNED BY usage_records.seq")
    op.execute("CREATE INDEX usage_records_fold_order ON usage_records (ingest_xid, seq)")
    op.execute(
        f"ALTER TABLE usage_records ATTACH PARTITION {SCHEMA}.{earlier} "
        f"FOR VALUES FROM (MINVALUE) TO ('{first_daily.isoformat()}')"
    )
    # The folder adds to a line's month many times over; room on each page lets an update stay on its
    # page without new index entries (a HOT update) when no indexed column changes.
    op.execute("ALTER TABLE monthly_usage SET (fillfactor = 70)")
    op.execute("ALTER TABLE monthly_usage_areas SET (fillfactor = 70)")
    for offset in range(_DAYS_AHEAD + 1):
        day = first_daily + timedelta(days=offset)
        op.execute(
            f"CREATE TABLE {SCHEMA}.usage_records_{day:%Y%m%d} PARTITION OF usage_records "
            f"FOR VALUES FROM ('{day.isoformat()}') TO ('{(day + timedelta(days=1)).isoformat()}')"
        )


def downgrade() -> None:
    op.execute("ALTER TABLE monthly_usage RESET (fillfactor)")
    op.execute("ALTER TABLE monthly_usage_areas RESET (fillfactor)")
    # Back to one table keyed by the record id: of records sharing an id, the first counted stays.
    op.execute(
        f"""
        CREATE TABLE usage_records_unpartitioned (
            {_COLUMNS},
            seq bigint GENERATED ALWAYS AS IDENTITY,
            PRIMARY KEY (record_id)
        )
        """
    )
    op.execute(
        "INSERT INTO usage_records_unpartitioned OVERRIDING SYSTEM VALUE "
        "SELECT DISTINCT ON (record_id) record_id, subscription_id, customer_id, usage_date, on_net_minutes, "
        "off_net_minutes, international_minutes, sms_count, data_mb, roaming, area, radio_technology, ingest_xid, seq "
        "FROM usage_records ORDER BY record_id, ingest_xid, seq"
    )
    op.execute(
        "SELECT setval(pg_get_serial_sequence('usage_records_unpartitioned', 'seq'), "
        "coalesce((SELECT max(seq) FROM usage_records_unpartitioned), 0) + 1, false)"
    )
    op.execute("DROP TABLE usage_records")
    op.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
    op.execute("ALTER TABLE usage_records_unpartitioned RENAME TO usage_records")
    op.execute("ALTER INDEX usage_records_unpartitioned_pkey RENAME TO usage_records_pkey")
    op.execute("CREATE INDEX usage_records_fold_order ON usage_records (ingest_xid, seq)")
