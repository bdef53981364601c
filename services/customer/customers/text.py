"""Text of customer records: search keys folded for case-, diacritic- and apostrophe-insensitive
search, cleaned names and free text, and the shape of reference ids (tariff plans, retailers)."""

import re
import unicodedata

# Apostrophe-like marks vanish from search keys: Uzbek "Gʻulom" is typed "G'ulom" or "Gulom".
_APOSTROPHES = dict.fromkeys(map(ord, "ʻʼ'`‘’ʹ′"), None)
# Letters that carry their mark in the base letter and so survive Unicode decomposition.
# Russian writes ё as е more often than not; search treats them alike.
_CYRILLIC_VARIANTS = str.maketrans({"ё": "е"})
_BASE_LETTERS = str.maketrans({"đ": "d", "ð": "d", "ø": "o", "ł": "l", "ı": "i", "ħ": "h", "ŧ": "t"})
_REFERENCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/\-]{0,127}$")


def fold(text: str) -> str:
    """Lower-case, diacritic-free, apostrophe-free form of `text` with single spaces.

    "Nguyễn Văn An" -> "nguyen van an", "Gʻulom" -> "gulom", "Олександр" -> "олександр".
    """
    # Lower-case after decomposing too: compatibility forms such as "𝐀" or "ℌ" decompose to capitals.
    decomposed = unicodedata.normalize("NFKD", text.casefold()).casefold().translate(_BASE_LETTERS)
    kept: list[str] = []
    for char in decomposed:
        # Marks go from Latin letters (ễ -> e); Cyrillic й and ї are letters of their own and stay.
        if unicodedata.combining(char) and kept and not _is_cyrillic(kept[-1]):
            continue
        kept.append(char)
    composed = unicodedata.normalize("NFC", "".join(kept)).translate(_CYRILLIC_VARIANTS).translate(_APOSTROPHES)
    return " ".join(composed.split())


def _is_cyrillic(char: str) -> bool:
    return "\u0400" <= char <= "\u04ff"


def clean_text(text: str) -> str:
    """NFC-normalised text with surrounding and repeated white space removed."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def is_reference_id(text: str) -> bool:
    """Whether `text` can name something another system keeps (a tariff plan, a retailer): 1 to 128
    letters, digits or . _ : / -, starting with a letter or digit."""
    return _REFERENCE_ID.fullmatch(text) is not None
