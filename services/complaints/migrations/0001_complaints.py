"""Tickets with their notes and history, departments with calendars, SLA plans and agents, routing
rules, customers' segments, pending compensations, request ids, the outbox and the event cursors.

Revision ID: 0001
Revises:
"""

from alembic import op

from chassis.event_consumer import CONSUMER_DDL
from chassis.idempotency import IDEMPOTENCY_DDL
from chassis.outbox import OUTBOX_DDL

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

STATES = ("acknowledged", "inProgress", "pending", "held", "resolved", "closed", "rejected", "cancelled", "merged")
OPEN_STATES = "('acknowledged', 'inProgress', 'pending', 'held')"


def upgrade() -> None:
    states = ", ".join(f"'{state}'" for state in STATES)
    op.execute(
        """
        CREATE TABLE departments (
            id text PRIMARY KEY,
            display_name text NOT NULL,
            time_zone text NOT NULL,
            country_code text NOT NULL DEFAULT '',
            opening_hours jsonb NOT NULL,
            company_holidays date[] NOT NULL DEFAULT '{}',
            company_working_days date[] NOT NULL DEFAULT '{}',
            sla_targets jsonb NOT NULL,
            paused_states text[] NOT NULL,
            warning_share double precision NOT NULL CHECK (warning_share > 0 AND warning_share < 1),
            assignment_policy text NOT NULL CHECK (assignment_policy IN ('round_robin', 'least_busy')),
            version bigint NOT NULL DEFAULT 1
        )
        """
    )
    op.execute(
        """
        CREATE TABLE agents (
            department_id text NOT NULL REFERENCES departments (id),
            id text NOT NULL,
            display_name text NOT NULL,
            available boolean NOT NULL,
            senior boolean NOT NULL,
            open_complaints bigint NOT NULL DEFAULT 0 CHECK (open_complaints >= 0),
            last_assign_time timestamptz,
            PRIMARY KEY (department_id, id)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE routing_rules (
            id text PRIMARY KEY,
            category text NOT NULL DEFAULT '',
            channel text NOT NULL DEFAULT '',
            segment text NOT NULL DEFAULT '',
            region text NOT NULL DEFAULT '',
            department_id text NOT NULL REFERENCES departments (id),
            priority text NOT NULL
        )
        """
    )
    op.execute(
        f"""
        CREATE TABLE complaints (
            id uuid PRIMARY KEY,
            customer_id uuid NOT NULL,
            line text NOT NULL DEFAULT '',
            type text NOT NULL,
            category text NOT NULL,
            description text NOT NULL,
            channel text NOT NULL,
            retailer_id text NOT NULL DEFAULT '',
            severity text NOT NULL,
            priority text NOT NULL,
            related_parties jsonb NOT NULL DEFAULT '[]',
            attachments jsonb NOT NULL DEFAULT '[]',
            related_entities jsonb NOT NULL DEFAULT '[]',
            external_id text NOT NULL DEFAULT '',
            contact text NOT NULL DEFAULT '',
            state text NOT NULL CHECK (state IN ({states})),
            department_id text NOT NULL REFERENCES departments (id),
            agent_id text NOT NULL DEFAULT '',
            queue text NOT NULL,
            resolution_text text NOT NULL DEFAULT '',
            resolution_code text NOT NULL DEFAULT '',
            resolver text NOT NULL DEFAULT '',
            resolve_time timestamptz,
            compensation_points bigint NOT NULL DEFAULT 0 CHECK (compensation_points >= 0),
            csat smallint CHECK (csat BETWEEN 1 AND 5),
            nps smallint CHECK (nps BETWEEN 0 AND 10),
            satisfaction_comment text NOT NULL DEFAULT '',
            satisfaction_time timestamptz,
            reopen_count integer NOT NULL DEFAULT 0,
            waited boolean NOT NULL DEFAULT false,
            merged_into uuid REFERENCES complaints (id),
            parent_id uuid REFERENCES complaints (id),
            creator text NOT NULL,
            create_time timestamptz NOT NULL,
            update_time timestamptz NOT NULL,
            close_time timestamptz,
            version bigint NOT NULL DEFAULT 1,
            note_count bigint NOT NULL DEFAULT 0,
            history_count bigint NOT NULL DEFAULT 0,
            erased boolean NOT NULL DEFAULT false,
            first_response_target interval NOT NULL,
            first_response_due timestamptz NOT NULL,
            first_response_time timestamptz,
            first_response_breached boolean NOT NULL DEFAULT false,
            resolution_target interval NOT NULL,
            warning_share double precision NOT NULL,
            sla_counted interval NOT NULL DEFAULT '0',
            sla_running_since timestamptz,
            resolution_business_time interval,
            warned boolean NOT NULL DEFAULT false,
            resolution_breached boolean NOT NULL DEFAULT false,
            next_sla_check timestamptz,
            pending_deadline timestamptz,
            silence_deadline timestamptz
        )
        """
    )
    # Lists newest first, each filter served by its own index; the breach scan and the deadlines of
    # pending and resolved tickets read only the tickets due.
    op.execute("CREATE INDEX complaints_newest ON complaints (create_time DESC, id DESC)")
    op.execute("CREATE INDEX complaints_by_customer ON complaints (customer_id, create_time DESC, id DESC)")
    op.execute("CREATE INDEX complaints_by_state ON complaints (state, create_time DESC, id DESC)")
    op.execute("CREATE INDEX complaints_by_department ON complaints (department_id, create_time DESC, id DESC)")
    op.execute("CREATE INDEX complaints_breached ON complaints (create_time DESC, id DESC) WHERE resolution_breached")
    op.execute("CREATE INDEX complaints_sla_scan ON complaints (next_sla_check) WHERE next_sla_check IS NOT NULL")
    op.execute("CREATE INDEX complaints_pending_deadline ON complaints (pending_deadline) WHERE state = 'pending'")
    op.execute("CREATE INDEX complaints_silence_deadline ON complaints (silence_deadline) WHERE state = 'resolved'")
    op.execute(f"CREATE INDEX complaints_backlog ON complaints (department_id) WHERE state IN {OPEN_STATES}")
    op.execute("CREATE INDEX complaints_children ON complaints (parent_id) WHERE parent_id IS NOT NULL")
    op.execute(
        """
        CREATE TABLE complaint_notes (
            complaint_id uuid NOT NULL REFERENCES complaints (id),
            note bigint NOT NULL,
            author text NOT NULL,
            text text NOT NULL,
            visibility text NOT NULL CHECK (visibility IN ('internal', 'customer_facing')),
            create_time timestamptz NOT NULL,
            merged_from uuid,
            PRIMARY KEY (complaint_id, note)
        )
        """
    )
    op.execute(
        f"""
        CREATE TABLE complaint_history (
            complaint_id uuid NOT NULL REFERENCES complaints (id),
            entry bigint NOT NULL,
            kind text NOT NULL,
            from_state text NOT NULL CHECK (from_state IN ({states})),
            to_state text NOT NULL CHECK (to_state IN ({states})),
            reason text NOT NULL,
            actor text NOT NULL,
            change_time timestamptz NOT NULL,
            detail text NOT NULL DEFAULT '',
            PRIMARY KEY (complaint_id, entry)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE customer_segments (
            customer_id uuid NOT NULL,
            segment text NOT NULL,
            PRIMARY KEY (customer_id, segment)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE compensations (
            complaint_id uuid PRIMARY KEY REFERENCES complaints (id),
            customer_id uuid NOT NULL,
            points bigint NOT NULL CHECK (points > 0),
            request_id text NOT NULL,
            state text NOT NULL CHECK (state IN ('pending', 'granted', 'refused')),
            attempts integer NOT NULL DEFAULT 0,
            next_attempt_time timestamptz NOT NULL,
            ledger_entry text NOT NULL DEFAULT '',
            refusal_reason text NOT NULL DEFAULT '',
            refusal_message text NOT NULL DEFAULT '',
            create_time timestamptz NOT NULL,
            settle_time timestamptz
        )
        """
    )
    op.execute("CREATE INDEX compensations_pending ON compensations (next_attempt_time) WHERE state = 'pending'")
    for statement in IDEMPOTENCY_DDL:
        op.execute(statement)
    # Which customer a stored answer is about, so that erasure finds the answers holding their words.
    op.execute("ALTER TABLE idempotency_keys ADD COLUMN customer_id uuid")
    op.execute("CREATE INDEX idempotency_keys_customer ON idempotency_keys (customer_id) WHERE customer_id IS NOT NULL")
    for statement in OUTBOX_DDL:
        op.execute(statement)
    for statement in CONSUMER_DDL:
        op.execute(statement)
    # The department every ticket goes to when no routing rule matches.
    op.execute(
        """
        INSERT INTO departments (id, display_name, time_zone, country_code, opening_hours, sla_targets,
            paused_states, warning_share, assignment_policy)
        VALUES ('customer-care', 'Customer care', 'Asia/Tashkent', 'UZ',
            '[[0, 540, 1080], [1, 540, 1080], [2, 540, 1080], [3, 540, 1080], [4, 540, 1080]]',
            '{"low": [480, 4320], "medium": [240, 2160], "high": [60, 960], "urgent": [30, 240]}',
            '{pending, held}', 0.8, 'round_robin')
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE compensations, customer_segments, complaint_history, complaint_notes, complaints, "
        "routing_rules, agents, departments, idempotency_keys, outbox, outbox_pruned, event_cursors, applied_events"
    )
