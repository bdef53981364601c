"""AIP-158 pagination: capped page sizes and opaque page tokens bound to the query's criteria.

A token carries the sort key of the last item served (keyset pagination, so a page costs the same
at page 1 and page 10,000) and a fingerprint of the criteria; using it with other criteria is
INVALID_ARGUMENT.
"""

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from chassis.errors import invalid_field

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500

Criteria = Mapping[str, str | int | bool | None]
SortKey = list[str | int]
T = TypeVar("T")


@dataclass(frozen=True)
class PageRequest:
    """What a list call asked for: how many items, after which sort key."""

    size: int
    after: SortKey | None

    @property
    def fetch_size(self) -> int:
        """Rows a store reads for this page: one more than asked for, to learn whether more follow."""
        return self.size + 1

    def after_uuid(self) -> uuid.UUID | None:
        """The UUID the page starts after; INVALID_ARGUMENT when the token holds something else."""
        if not self.after:
            return None
        try:
            return uuid.UUID(str(self.after[0]))
        except ValueError:
            raise invalid_field("page_token", "is not a token this service issued") from None

    def after_int(self) -> int | None:
        """The integer the page starts after; INVALID_ARGUMENT when the token holds something else."""
        if not self.after:
            return None
        if not isinstance(self.after[0], int) or isinstance(self.after[0], bool):
            raise invalid_field("page_token", "is not a token this service issued")
        return self.after[0]


def read_page_request(page_size: int, page_token: str, criteria: Criteria) -> PageRequest:
    """Validates the page size and decodes the token against the call's criteria."""
    if page_size < 0:
        raise invalid_field("page_size", "must not be negative")
    if page_size > MAX_PAGE_SIZE:
        raise invalid_field("page_size", f"must be at most {MAX_PAGE_SIZE}")
    size = page_size or DEFAULT_PAGE_SIZE
    if not page_token:
        return PageRequest(size=size, after=None)
    try:
        payload = json.loads(base64.urlsafe_b64decode(page_token.encode("ascii")))
        after, fingerprint = payload["after"], payload["criteria"]
    except (ValueError, KeyError, TypeError, RecursionError, binascii.Error, UnicodeEncodeError):
        raise invalid_field("page_token", "is not a token this service issued") from None
    if fingerprint != _fingerprint(criteria):
        raise invalid_field("page_token", "was issued for different criteria; start again without it")
    if not isinstance(after, list):
        raise invalid_field("page_token", "is not a token this service issued")
    return PageRequest(size=size, after=after)


def next_page_token(last_key: SortKey, criteria: Criteria) -> str:
    """The token for the page after the item whose sort key is `last_key`."""
    payload = {"after": last_key, "criteria": _fingerprint(criteria)}
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode("ascii")


def _fingerprint(criteria: Criteria) -> str:
    canonical = json.dumps(dict(criteria), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Page(Generic[T]):
    """Items of one page and the token of the next ("" on the last page)."""

    items: list[T]
    next_page_token: str

    @classmethod
    def cut(
        cls, rows: Sequence[T], page: PageRequest, sort_key: Callable[[T], SortKey], criteria: Criteria
    ) -> "Page[T]":
        """The page of `rows`, which a store fetched with `page.fetch_size` (one more than asked for):
        the extra row, when there, only says that a next page exists."""
        if len(rows) <= page.size:
            return cls(list(rows), "")
        items = list(rows[: page.size])
        return cls(items, next_page_token(sort_key(items[-1]), criteria))
