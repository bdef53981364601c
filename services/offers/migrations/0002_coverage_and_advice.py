"""Coverage per area and the tariff advice kept as evidence.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE coverage_areas (
            market text NOT NULL,
            area_key text NOT NULL,
            area text NOT NULL,
            technologies smallint[] NOT NULL,
            PRIMARY KEY (market, area_key)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE coverage_state (
            id smallint PRIMARY KEY CHECK (id = 1),
            version bigint NOT NULL,
            update_time timestamptz
        )
        """
    )
    op.execute("INSERT INTO coverage_state (id, version) VALUES (1, 0)")
    op.execute(
        """
        CREATE TABLE tariff_recommendations (
            id uuid PRIMARY KEY,
            customer_id uuid NOT NULL,
            subscription_id uuid NOT NULL,
            outcome text NOT NULL,
            current_plan text NOT NULL,
            recommended_plan text NOT NULL,
            currency text NOT NULL,
            monthly_saving_minor bigint NOT NULL,
            answer bytea NOT NULL,
            create_time timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX tariff_recommendations_customer ON tariff_recommendations (customer_id, create_time)")


def downgrade() -> None:
    op.execute("DROP TABLE tariff_recommendations")
    op.execute("DROP TABLE coverage_state")
    op.execute("DROP TABLE coverage_areas")
