"""Phone numbers as E.164 (+16135550135), the form Shopify stores customer phones in.

Rules (decided; PROTOCOL §5 says only "normalize to E.164"):
- separators (spaces, dots, dashes, slashes, parentheses) are dropped; a leading `+` or `00` marks an international number;
- an international number must then be 8–15 digits, not starting with 0;
- digits without `+`/`00`, when the shop names its country (`default_region`, ISO 3166 "FR"): read as a national
  number of that country by libphonenumber (`phonenumbers`), which knows each country's trunk prefix and number
  lengths ("06 12 34 56 78" in FR → +33612345678), and kept only when it is a valid number there;
- other bare digits: 11–15 digits are read as already carrying a country code ("8613800138000"), anything shorter is
  rejected (without a country a local number is ambiguous, and a guess could match another shopper's phone);
- anything else (letters, search syntax, several `+`) is not a phone number: None.
"""

from __future__ import annotations

import re

import phonenumbers

_SEPARATORS = re.compile(r"[\s.\-/()]+")
_E164 = re.compile(r"\+[1-9]\d{7,14}")


def normalize_phone(raw: str, default_region: str | None = None) -> str | None:
    """E.164 form of `raw`, or None when it is not a phone number. `default_region`: the shop's country (ISO 3166
    alpha-2) for numbers written the local way."""
    text = _SEPARATORS.sub("", raw or "")
    if len(text) > 20:
        return None
    if text.startswith("+"):
        candidate = text
    elif text.startswith("00"):
        candidate = "+" + text[2:]
    elif text.isascii() and text.isdigit():
        national = _national(text, default_region) if default_region else None
        if national is not None:
            candidate = national
        elif 11 <= len(text) <= 15:
            candidate = "+" + text
        else:
            return None
    else:
        return None
    return candidate if is_e164(candidate) else None


def is_e164(phone: str) -> bool:
    """Whether `phone` already is in the form `normalize_phone` gives (a check, not a normalisation)."""
    return _E164.fullmatch(phone) is not None and phone[1:].isascii()


def _national(digits: str, region: str) -> str | None:
    """`digits` as a national number of `region` in E.164, or None when it is not a valid number there."""
    try:
        number = phonenumbers.parse(digits, region.upper())
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def is_known_region(region: str) -> bool:
    """A country libphonenumber has numbering rules for (config validation)."""
    return region.upper() in phonenumbers.SUPPORTED_REGIONS


def looks_like_email(value: str) -> bool:
    """A plausible single email address: one @, no whitespace, no search syntax characters, a dot in the domain."""
    return bool(re.fullmatch(r"[^\s@\"\\()*:]+@[^\s@\"\\()*:]+\.[^\s@\"\\()*:]+", value)) and len(value) <= 254
