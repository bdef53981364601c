"""How big a benchmark run is: full for `make bench`, small for a smoke run (`--quick`), each size
overridable by the option named after it."""

import argparse
from dataclasses import fields, replace
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Sizes = TypeVar("Sizes", bound="DataclassInstance")


def chosen_sizes(parser: argparse.ArgumentParser, argv: list[str] | None, *, full: Sizes, quick: Sizes) -> Sizes:
    """Parses `argv` with `parser`, whose options are named after the fields of `full` and default to
    None, plus `--quick`: the full sizes (the quick ones under `--quick`) with the options given."""
    parser.add_argument("--quick", action="store_true", help="a smoke run: small counts and short phases")
    arguments = parser.parse_args(argv)
    given = {f.name: getattr(arguments, f.name) for f in fields(full) if getattr(arguments, f.name) is not None}
    return replace(quick if arguments.quick else full, **given)
