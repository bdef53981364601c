"""AIP-122 resource names: one pattern per resource type, used both to build names and to parse them.

A pattern such as `customers/{customer}/subscriptions/{subscription}` alternates collection ids and
variables. Parsing checks the shape and each id, and a malformed name is INVALID_ARGUMENT naming the
request field and showing the expected shape, so a caller sees at once what to send.
"""

import re
import uuid
from dataclasses import dataclass, field

from chassis.errors import invalid_field

_VARIABLE = re.compile(r"^\{([a-z_]+)\}$")
_SLUG = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class ResourcePattern:
    """A resource name pattern, e.g. `customers/{customer}` or `accounts/{account}/entries/{entry}`."""

    template: str
    _literals: tuple[str | None, ...] = field(init=False, repr=False)
    """Each segment's collection id, None where the segment is a variable."""
    _variables: tuple[str, ...] = field(init=False, repr=False)
    _name_format: str = field(init=False, repr=False)
    """The template with each variable as `{}`: names are built by one str.format (every answer builds some)."""

    def __post_init__(self) -> None:
        segments = tuple(self.template.split("/"))
        matches = [_VARIABLE.match(s) for s in segments]
        object.__setattr__(self, "_literals", tuple(None if m else s for s, m in zip(segments, matches, strict=True)))
        object.__setattr__(self, "_variables", tuple(m.group(1) for m in matches if m))
        object.__setattr__(
            self, "_name_format", "/".join("{}" if m else s for s, m in zip(segments, matches, strict=True))
        )

    @property
    def variables(self) -> tuple[str, ...]:
        """The names of the pattern's variables, in order."""
        return self._variables

    def format(self, *ids: object) -> str:
        """The name of the resource with these ids, in the pattern's order."""
        if len(ids) != len(self._variables):
            raise ValueError(f"{self.template} takes {len(self._variables)} ids, got {len(ids)}")
        return self._name_format.format(*ids)

    def parse(self, name: str, field: str = "name") -> tuple[str, ...]:
        """The ids in `name`, as text; INVALID_ARGUMENT naming `field` when its shape differs."""
        parts = name.split("/")
        if len(parts) != len(self._literals) or any(
            not part or (literal is not None and part != literal)
            for part, literal in zip(parts, self._literals, strict=True)
        ):
            raise invalid_field(field, f"must look like {self.template}, got {name!r}")
        return tuple(part for part, literal in zip(parts, self._literals, strict=True) if literal is None)

    def parse_uuids(self, name: str, field: str = "name") -> tuple[uuid.UUID, ...]:
        """The ids in `name`, each a UUID."""
        return tuple(
            _uuid(text, variable, name, field)
            for text, variable in zip(self.parse(name, field), self.variables, strict=True)
        )

    def parse_uuid(self, name: str, field: str = "name") -> uuid.UUID:
        """The one id of a single-variable pattern (or the first), as a UUID."""
        return self.parse_uuids(name, field)[0]

    def parse_slug(self, name: str, field: str = "name") -> str:
        """The last id of `name`, which must be a short lower-case slug (`rewards/{reward}`)."""
        last = self.parse(name, field)[-1]
        if not _SLUG.fullmatch(last):
            raise invalid_field(field, f"has no valid {self.variables[-1]} id: {name!r}")
        return last

    def parse_number(self, name: str, field: str = "name") -> tuple[uuid.UUID, int]:
        """For `parent/{uuid}/collection/{n}`: the parent's UUID and the positive number n."""
        ids = self.parse(name, field)
        number = ids[-1]
        if not number.isascii() or not number.isdigit() or len(number) > 18 or int(number) < 1:
            raise invalid_field(field, f"has no valid {self.variables[-1]} number: {name!r}")
        return _uuid(ids[0], self.variables[0], name, field), int(number)


def _uuid(text: str, variable: str, name: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise invalid_field(field, f"has no valid {variable} id: {name!r}") from None


CUSTOMER = ResourcePattern("customers/{customer}")
"""A customer, the resource every service keys its data by."""
SUBSCRIPTION = ResourcePattern("customers/{customer}/subscriptions/{subscription}")
"""A customer's line."""
