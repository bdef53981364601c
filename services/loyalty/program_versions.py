"""Use cases of the program's configuration: the version in force, and changing it.

Until the first change the built-in program (version 0) is in force. Versions are immutable, so a
parsed version is cached by its number; every read checks which number is newest.
"""

from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from chassis.caller import current_caller
from chassis.errors import etag_mismatch
from crm.loyalty.v1 import program_pb2
from services.loyalty import catalog_store, mapping
from services.loyalty.program_rules import DEFAULT_PROGRAM, Program, check_program

_parsed: dict[int, Program] = {}


async def current_program(session: AsyncSession) -> Program:
    """The program version in force; a version's definition is read once per process."""
    version = await catalog_store.latest_program_version(session)
    if version is None:
        return DEFAULT_PROGRAM
    program = _parsed.get(version)
    if program is None:
        definition, create_time = await catalog_store.get_program_version(session, version)
        parsed = mapping.program_from_proto(program_pb2.Program.FromString(definition))
        program = _parsed[version] = replace(parsed, version=version, update_time=create_time)
    return program


async def update_program(session: AsyncSession, message: program_pb2.Program) -> Program:
    """Checks and stores a new version; ABORTED when `message.etag` is not the current version's."""
    program = mapping.program_from_proto(message)
    check_program(program)
    await catalog_store.lock_program(session)
    current = await current_program(session)
    if message.etag != mapping.program_to_proto(current).etag:
        raise etag_mismatch(mapping.PROGRAM_NAME)
    now = datetime.now(UTC)
    version = current.version + 1
    stored = replace(program, version=version, update_time=now)
    definition = mapping.program_to_proto(stored)
    for output_only in ("name", "version", "update_time", "etag"):
        definition.ClearField(output_only)
    await catalog_store.insert_program(
        session, version, definition.SerializeToString(), now=now, actor=current_caller().subject
    )
    return stored
