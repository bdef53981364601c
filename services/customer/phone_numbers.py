"""Phone numbers in E.164, read with the phone-number library: contact numbers, line numbers and the
numbers network mediation reports usage for all go through here."""

import phonenumbers


def normalize_phone(raw: str, default_region: str) -> str | None:
    """E.164 form of a phone number written in any common format, or None when it is not valid."""
    try:
        number = phonenumbers.parse(raw, default_region.upper() or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def is_country_code(code: str) -> bool:
    """Whether `code` is an ISO 3166-1 alpha-2 region known to the phone-number library."""
    return code.upper() in phonenumbers.SUPPORTED_REGIONS
