"""HMAC-SHA256 signing and verification for every header form the gateway meets.

- JoinChat queries and pushes: `X-Joinchat-Signature` = base64(HMAC-SHA256(secret, raw body)).
- Meetbot: `X-Hub-Signature`; we accept `sha256=<hex>`, bare hex (either case) and base64 (PROTOCOL §2), and we send `sha256=<hex>`.
- Shopify webhooks: `X-Shopify-Hmac-Sha256` = base64(HMAC-SHA256(app client secret, raw body)).

Verification always runs on the raw bytes, compares digests (not strings) with `hmac.compare_digest`, and tries every
accepted secret so a secret can be rotated without a failed request.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable

JOINCHAT_HEADER = "X-Joinchat-Signature"
MEETBOT_HEADER = "X-Hub-Signature"
SHOPIFY_HEADER = "X-Shopify-Hmac-Sha256"


def digest(secret: str | bytes, body: bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    # the one-shot form: OpenSSL's HMAC in one call, without the Python HMAC object `hmac.new` builds
    return hmac.digest(key, body, "sha256")


def sign_base64(secret: str | bytes, body: bytes) -> str:
    """JoinChat and Shopify form."""
    return base64.b64encode(digest(secret, body)).decode("ascii")


def sign_hub(secret: str | bytes, body: bytes) -> str:
    """Meetbot form, as the gateway sends it."""
    return "sha256=" + digest(secret, body).hex()


def decode_signature(header: str | None) -> bytes | None:
    """The 32 raw digest bytes a header carries, in any accepted encoding; None when it carries none."""
    if not header:
        return None
    value = header.strip()
    if value[:7].lower() == "sha256=":
        value = value[7:]
    if len(value) == 64:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    try:
        # what base64.b64decode(value, validate=True) runs, without its four Python calls around it (a non-ASCII
        # str is a ValueError either way)
        raw = binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


def verify(header: str | None, body: bytes, secrets: Iterable[str]) -> bool:
    """True when the header is a valid signature of body under any accepted secret. Constant time per secret."""
    given = decode_signature(header)
    if given is None:
        # Still spend one HMAC so a missing header is not measurably faster than a wrong one.
        hmac.compare_digest(digest(b"-", body), bytes(32))
        return False
    ok = False
    for secret in secrets:
        ok |= hmac.compare_digest(digest(secret, body), given)
    return ok
