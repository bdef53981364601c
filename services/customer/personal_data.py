"""Where the parts of the service hold data about customers, and how each erases its own.

Each part declares one `CustomerData`: the tables it keeps customer data in, with what erasure does to
each, and its eraser. `services.customer.erasure` runs every declared eraser; a test reads the
database's catalogue and fails when a table with customer data belongs to no declaration.
"""

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

Eraser = Callable[[AsyncSession, uuid.UUID, datetime], Awaitable[None]]
"""Erases a part's data about one customer within the caller's transaction, as of `now`."""


@dataclass(frozen=True)
class CustomerData:
    """The data one part holds about customers, and its eraser."""

    part: str
    """The part, e.g. `usage`."""
    tables: Mapping[str, str]
    """Each table holding customer data, with what erasure does to it (and why when it keeps rows)."""
    erase: Eraser
    """Erases the part's data about one customer (right to be forgotten)."""
