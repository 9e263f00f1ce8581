"""Phone numbers as E.164 (+16135550135), the form Shopify stores customer phones in.

Rules (decided; PROTOCOL §5 says only "normalize to E.164"):
- separators (spaces, dots, dashes, slashes, parentheses) are dropped; a leading `+` or `00` marks an international number;
- an international number must then be 8–15 digits, not starting with 0;
- digits without `+`/`00`: with `default_country_code` (e.g. "1") the national number (trunk `0` dropped) gets that code;
  without one, 11–15 digits are read as already carrying a country code ("8613800138000"), anything shorter is rejected;
- anything else (letters, search syntax, several `+`) is not a phone number: None.
"""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s.\-/()]+")
_E164 = re.compile(r"\+[1-9]\d{7,14}")


def normalize_phone(raw: str, default_country_code: str | None = None) -> str | None:
    """E.164 form of `raw`, or None when it is not a phone number."""
    text = _SEPARATORS.sub("", raw or "")
    if len(text) > 20:
        return None
    if text.startswith("+"):
        candidate = text
    elif text.startswith("00"):
        candidate = "+" + text[2:]
    elif text.isascii() and text.isdigit():
        if default_country_code:
            candidate = "+" + default_country_code.lstrip("+") + text.lstrip("0")
        elif 11 <= len(text) <= 15:
            candidate = "+" + text
        else:
            return None
    else:
        return None
    return candidate if _E164.fullmatch(candidate) and candidate[1:].isascii() else None


def looks_like_email(value: str) -> bool:
    """A plausible single email address: one @, no whitespace, no search syntax characters, a dot in the domain."""
    return bool(re.fullmatch(r"[^\s@\"\\()*:]+@[^\s@\"\\()*:]+\.[^\s@\"\\()*:]+", value)) and len(value) <= 254
