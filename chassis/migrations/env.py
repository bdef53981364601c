"""Alembic environment shared by every service's database; each service brings only its revisions."""

from alembic import context

from chassis.database import run_migrations_online

run_migrations_online(context.config)
