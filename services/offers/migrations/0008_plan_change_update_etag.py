"""The line's etag an accepted plan change's tariff update is sent with, kept with the change so that
every retry of the update is the same request and its request_id returns the first answer.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Empty until the sender first reads the line; emptied again when the update was refused as stale.
    op.execute("ALTER TABLE plan_changes ADD COLUMN update_etag text NOT NULL DEFAULT ''")


def downgrade() -> None:
    op.execute("ALTER TABLE plan_changes DROP COLUMN update_etag")
