"""Plan changes with the customer's acceptance as evidence, and the pending step that applies an
accepted change in the customer service.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE plan_changes (
            id uuid PRIMARY KEY,
            customer_id uuid NOT NULL,
            subscription_id uuid NOT NULL,
            from_plan text NOT NULL,
            to_plan text NOT NULL,
            to_plan_version bigint NOT NULL,
            to_plan_price_minor bigint NOT NULL,
            currency text NOT NULL,
            origin text NOT NULL CHECK (origin IN ('REQUEST', 'RECOMMENDATION', 'RETIREMENT')),
            recommendation_id uuid,
            state text NOT NULL CHECK (state IN ('PROPOSED', 'ACCEPTED', 'APPLIED', 'REFUSED', 'DECLINED')),
            acceptor_kind text,
            channel text,
            accepted_by text,
            accept_time timestamptz,
            statement text NOT NULL DEFAULT '',
            decline_note text NOT NULL DEFAULT '',
            refusal_reason text NOT NULL DEFAULT '',
            refusal_message text NOT NULL DEFAULT '',
            create_time timestamptz NOT NULL,
            settle_time timestamptz,
            next_attempt_time timestamptz,
            attempts integer NOT NULL DEFAULT 0,
            version bigint NOT NULL DEFAULT 1,
            -- A change leaves PROPOSED only with an acceptance (or a decline): no change without consent.
            CHECK (state IN ('PROPOSED', 'DECLINED') OR (accepted_by IS NOT NULL AND accept_time IS NOT NULL
                AND acceptor_kind IS NOT NULL AND channel IS NOT NULL))
        )
        """
    )
    op.execute("CREATE INDEX plan_changes_line ON plan_changes (customer_id, subscription_id, create_time DESC, id)")
    # The sender's queue: accepted changes by when they are due.
    op.execute("CREATE INDEX plan_changes_due ON plan_changes (next_attempt_time) WHERE state = 'ACCEPTED'")
    # One change of a line's plan in flight at a time.
    op.execute(
        "CREATE UNIQUE INDEX plan_changes_one_in_flight ON plan_changes (subscription_id) WHERE state = 'ACCEPTED'"
    )


def downgrade() -> None:
    op.execute("DROP TABLE plan_changes")
