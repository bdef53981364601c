"""Use cases of the program's stored versions: the version in force, and changing it.

Until the first change the built-in program (version 0) is in force. Versions are immutable, so a
parsed version is cached by its number; every read checks which number is newest.
"""

from dataclasses import replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from chassis.caller import current_caller
from chassis.errors import etag_mismatch
from services.loyalty import catalog_store, mapping
from services.loyalty.program_rules import DEFAULT_PROGRAM, Program, check_program
from services.loyalty.resource_names import PROGRAM

_parsed: dict[int, Program] = {}


async def current_program(session: AsyncSession) -> Program:
    """The program version in force; a version's definition is read once per process."""
    version = await catalog_store.latest_program_version(session)
    if version is None:
        return DEFAULT_PROGRAM
    program = _parsed.get(version)
    if program is None:
        definition, create_time = await catalog_store.get_program_version(session, version)
        program = _parsed[version] = mapping.program_from_definition(definition, version, create_time)
    return program


async def update_program(
    session: AsyncSession, program: Program, expected_version: int | None, now: datetime
) -> Program:
    """Checks `program` and stores it as the next version, made at `now`; ABORTED unless
    `expected_version` (from the etag the caller read) is the version in force."""
    check_program(program)
    await catalog_store.lock_program(session)
    current = await current_program(session)
    if expected_version != current.version:
        raise etag_mismatch(PROGRAM.format())
    stored = replace(program, version=current.version + 1, update_time=now)
    await catalog_store.insert_program(
        session, stored.version, mapping.program_definition(stored), now=now, actor=current_caller().subject
    )
    return stored
