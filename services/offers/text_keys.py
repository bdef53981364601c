"""Keys that compare names of areas and regions as people mean them: case and diacritics ignored."""

import unicodedata


def place_key(name: str) -> str:
    """`name` without case, diacritics or surrounding blanks ("Hà Nội" and "ha noi" meet)."""
    decomposed = unicodedata.normalize("NFKD", name.strip().casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace("đ", "d")
