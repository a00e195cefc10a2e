"""Encryption at rest: AES-256-GCM with keys from configuration.

``ENCRYPTION_KEY`` is the key new data is written with; ``ENCRYPTION_OLD_KEYS`` (comma
separated) are keys that may still be needed to read older data until ``flask keys rotate``
has re-encrypted it. Every ciphertext names the key it was made with by a short key id (a hash
of the key, never the key), so a missing key is reported as exactly that, not as corruption.

Documents are encrypted in chunks (``booking.documents.storage``); short secrets stored in the
database, such as the staff's two-factor secrets, use ``EncryptedText``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import Flask, current_app
from sqlalchemy import String, Text
from sqlalchemy.types import TypeDecorator

KEY_BYTES = 32
KEY_ID_BYTES = 4
NONCE_BYTES = 12
FIELD_PREFIX = "v1"


def text_digest(text: str) -> str:
    """SHA-256 of ``text``, hex: what is kept of a random token (a patient's private link, a
    staff session's id), and a key that names an account without holding what was typed.
    A fast hash is enough for tokens of 256 random bits; passwords use argon2 instead."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class KeyMissingError(RuntimeError):
    """Data was encrypted with a key that is not configured: it cannot be read without it."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(
            f"This data was encrypted with key id {key_id}, which is not configured. "
            "Add that key to ENCRYPTION_OLD_KEYS (or set it as ENCRYPTION_KEY). Without it "
            "the data cannot be read: see README, 'Encryption keys'."
        )


class DecryptionError(RuntimeError):
    """The ciphertext does not authenticate: it was altered, truncated or damaged."""


def new_key() -> str:
    """A fresh key in the form the settings take (URL-safe base64 of 32 random bytes)."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def parse_key(text: str) -> bytes:
    """The 32 key bytes of a configured key; ValueError with a clear message if malformed."""
    try:
        raw = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raw = b""
    if len(raw) != KEY_BYTES:
        raise ValueError(
            "An encryption key must be 32 random bytes in URL-safe base64 (44 characters); "
            "make one with: flask keys new"
        )
    return raw


@dataclass(frozen=True)
class Key:
    id: bytes  # KEY_ID_BYTES, stored beside each ciphertext
    aead: AESGCM

    @classmethod
    def from_bytes(cls, raw: bytes) -> Key:
        key_id = hashlib.sha256(b"spineconsult key id\0" + raw).digest()[:KEY_ID_BYTES]
        return cls(key_id, AESGCM(raw))

    @property
    def label(self) -> str:
        return self.id.hex()


class KeyRing:
    """The current key and the older ones still accepted for reading."""

    def __init__(self, current: bytes, old: list[bytes] | tuple[bytes, ...] = ()) -> None:
        self.current = Key.from_bytes(current)
        self._by_id = {self.current.id: self.current}
        for raw in old:
            key = Key.from_bytes(raw)
            self._by_id.setdefault(key.id, key)

    def get(self, key_id: bytes) -> Key:
        try:
            return self._by_id[key_id]
        except KeyError:
            raise KeyMissingError(key_id.hex()) from None

    @classmethod
    def from_settings(cls, current: str | None, old: str | None) -> KeyRing:
        if not current:
            raise RuntimeError(
                "ENCRYPTION_KEY is not set. Documents and two-factor secrets are encrypted "
                'with it: make one with `flask keys new` (or python -c "import base64, os; '
                'print(base64.urlsafe_b64encode(os.urandom(32)).decode())"), store it '
                "outside the database backups, and set ENCRYPTION_KEY. See README, "
                "'Encryption keys'."
            )
        olds = [parse_key(part) for part in (old or "").split(",") if part.strip()]
        return cls(parse_key(current), olds)


def init_keys(app: Flask) -> None:
    """Read the keys once at start-up so a missing or malformed key stops the app early."""
    app.extensions["spineconsult_keys"] = KeyRing.from_settings(
        app.config.get("ENCRYPTION_KEY"), app.config.get("ENCRYPTION_OLD_KEYS")
    )


def key_ring() -> KeyRing:
    return current_app.extensions["spineconsult_keys"]


def encrypt_text(plaintext: str, ring: KeyRing | None = None) -> str:
    """``v1:<key id>:<base64 nonce + ciphertext>`` for a short secret stored in a column."""
    key = (ring or key_ring()).current
    nonce = os.urandom(NONCE_BYTES)
    sealed = key.aead.encrypt(nonce, plaintext.encode("utf-8"), FIELD_PREFIX.encode())
    body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
    return f"{FIELD_PREFIX}:{key.label}:{body}"


def is_encrypted_text(value: str) -> bool:
    return value.startswith(FIELD_PREFIX + ":")


def decrypt_text(value: str, ring: KeyRing | None = None) -> str:
    try:
        _prefix, label, body = value.split(":", 2)
        key_id = bytes.fromhex(label)
        raw = base64.urlsafe_b64decode(body.encode("ascii"))
    except ValueError as exc:
        raise DecryptionError("malformed encrypted value") from exc
    key = (ring or key_ring()).get(key_id)
    if len(raw) <= NONCE_BYTES:  # cut short: AESGCM would raise a bare ValueError
        raise DecryptionError("malformed encrypted value")
    try:
        plain = key.aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], FIELD_PREFIX.encode())
    except InvalidTag as exc:
        raise DecryptionError("encrypted value does not authenticate") from exc
    return plain.decode("utf-8")


def key_label_of_text(value: str) -> str | None:
    """The key id an encrypted column value was made with; None for a legacy plain value."""
    return value.split(":", 2)[1] if is_encrypted_text(value) else None


class EncryptedText(TypeDecorator[str]):
    """A short text column stored encrypted with the current key.

    Values written before encryption was introduced (plain text) are still read; ``flask keys
    rotate`` re-encrypts them.
    """

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: object) -> str | None:
        return None if value is None else encrypt_text(value)

    def process_result_value(self, value: str | None, dialect: object) -> str | None:
        if value is None or not is_encrypted_text(value):
            return value
        return decrypt_text(value)


class EncryptedLongText(EncryptedText):
    """``EncryptedText`` for a TEXT column (an email's bodies): the same sealing, no retype."""

    impl = Text
    cache_ok = True
