"""Retention of the chassis' tables: request ids and outbox events found by age through an index, how
far each event type was pruned, and the segment evaluator declared as a local reader of the outbox.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

from chassis.idempotency import IDEMPOTENCY_CREATE_TIME_INDEX
from chassis.outbox import OUTBOX_PRUNED_DDL
from chassis.retention import outbox_local_readers_ddl

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The evaluator reads the outbox after its own position: nothing after it may be pruned.
_LOCAL_READERS = {"segment-evaluator": "SELECT outbox_position FROM segmentation_state WHERE id = 1"}


def upgrade() -> None:
    op.execute(IDEMPOTENCY_CREATE_TIME_INDEX)
    op.execute(OUTBOX_PRUNED_DDL)
    op.execute(outbox_local_readers_ddl(_LOCAL_READERS))


def downgrade() -> None:
    op.execute("DROP VIEW outbox_local_readers")
    op.execute("DROP TABLE outbox_pruned")
    op.execute("DROP INDEX idempotency_keys_create_time")
