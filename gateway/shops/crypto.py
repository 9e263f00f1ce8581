"""Encryption at rest of what a stored shop must keep secret: its Shopify tokens and its bot and push secrets.

AES-256-GCM (`cryptography`), a fresh 96-bit nonce per value, the shop key and the purpose as associated data (a
value copied onto another shop, or from tokens to secrets, does not decrypt). A value names the key that sealed it
(the first 8 hex digits of the key's SHA-256), so `app.previous_token_keys` can still open what an old key sealed
while `app.token_key` seals everything written from then on.

    v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = "v1"
_NONCE_BYTES = 12


class SealedValueError(Exception):
    """A stored value that no configured key opens (wrong key, or tampered with)."""


def check_key(text: str) -> bytes:
    """A key as configured (base64 of 32 random bytes, e.g. `openssl rand -base64 32`) → its bytes."""
    text = text.strip()
    standard = text.replace("-", "+").replace("_", "/")  # the URL-safe alphabet too
    try:
        raw = base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the token key must be base64 of 32 random bytes (openssl rand -base64 32)") from None
    if len(raw) != 32:
        raise ValueError(f"the token key must be 32 bytes (base64 of 32 random bytes), not {len(raw)}")
    return raw


def _key_id(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:8]


class Sealer:
    """Seals with the current key; opens with it or any previous one."""

    def __init__(self, key: str, previous: Sequence[str] = ()) -> None:
        current = check_key(key)
        self._seal_id = _key_id(current)
        self._seal = AESGCM(current)
        self._open: dict[str, AESGCM] = {self._seal_id: self._seal}
        for old in previous:
            raw = check_key(old)
            self._open.setdefault(_key_id(raw), AESGCM(raw))

    def seal(self, plaintext: bytes, *, shop_key: str, purpose: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._seal.encrypt(nonce, plaintext, _aad(shop_key, purpose))
        return f"{_VERSION}.{self._seal_id}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, value: str, *, shop_key: str, purpose: str) -> bytes:
        version, _, rest = value.partition(".")
        key_id, _, body = rest.partition(".")
        cipher = self._open.get(key_id)
        if version != _VERSION or cipher is None:
            raise SealedValueError(f"sealed with a key that is not configured (key id {key_id or '?'})")
        try:
            raw = base64.urlsafe_b64decode(body)
            return cipher.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _aad(shop_key, purpose))
        except (binascii.Error, ValueError, InvalidTag):
            raise SealedValueError("a sealed value does not open: tampered with, or moved to another shop") from None

    def __repr__(self) -> str:
        return f"Sealer(key id {self._seal_id}, {len(self._open) - 1} previous)"


def _aad(shop_key: str, purpose: str) -> bytes:
    return f"gateway-shop|{purpose}|{shop_key}".encode()
