"""Etags of versioned resources (AIP-154), one format for every service: a weak etag of the version
number, `W/"7"`. Clients treat it as opaque and send it back unchanged."""

from chassis.errors import invalid_field


def etag(version: int) -> str:
    """The etag of a version."""
    return f'W/"{version}"'


def version_from_etag(value: str, field: str = "etag") -> int | None:
    """The version an etag stands for; None when no etag was sent; INVALID_ARGUMENT naming `field`
    when it is not one this system issued."""
    if not value:
        return None
    digits = value.removeprefix('W/"').removesuffix('"')
    if not value.startswith('W/"') or not value.endswith('"') or not digits.isascii() or not digits.isdigit():
        raise invalid_field(field, "is not an etag this service issued")
    return int(digits)
