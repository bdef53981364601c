"""Retention of the chassis' tables: request ids by age and applied event ids by position found through
an index, and how far each event type was pruned from the outbox.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

from chassis.event_consumer import APPLIED_EVENTS_POSITION_INDEX
from chassis.idempotency import IDEMPOTENCY_CREATE_TIME_INDEX
from chassis.outbox import OUTBOX_PRUNED_DDL

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(IDEMPOTENCY_CREATE_TIME_INDEX)
    op.execute(APPLIED_EVENTS_POSITION_INDEX)
    op.execute(OUTBOX_PRUNED_DDL)


def downgrade() -> None:
    op.execute("DROP TABLE outbox_pruned")
    op.execute("DROP INDEX applied_events_position")
    op.execute("DROP INDEX idempotency_keys_create_time")
