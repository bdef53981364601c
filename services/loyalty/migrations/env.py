"""Alembic environment of the loyalty database."""

from alembic import context

from chassis.database import run_migrations_online

run_migrations_online(context.config)
