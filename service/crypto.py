"""Field encryption at rest for OAuth tokens (AES-256-GCM), with key ids so keys can rotate.

FIELD_ENCRYPTION_KEY = "kid:base64key,oldkid:base64key": the first key encrypts; any listed key
decrypts. A stored value looks like `enc:v1:<kid>:<base64(nonce + ciphertext)>`; a value without the
prefix was stored before encryption was turned on and is returned as it is.
"""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "enc:v1:"
ENCRYPTED_ACCOUNT_FIELDS = ("access_token", "refresh_token", "id_token")


class FieldKeyError(ValueError):
    pass


class FieldCipher:
    def __init__(self, spec: str):
        self.keys: dict[str, AESGCM] = {}
        self.current: str | None = None
        for item in filter(None, (p.strip() for p in spec.split(","))):
            kid, _, b64 = item.partition(":")
            try:
                key = base64.b64decode(b64, validate=True)
            except ValueError:
                raise FieldKeyError(f"FIELD_ENCRYPTION_KEY {kid!r}: not base64") from None
            if not kid or len(key) != 32:
                raise FieldKeyError("FIELD_ENCRYPTION_KEY entries are kid:base64(32 random bytes)")
            self.keys[kid] = AESGCM(key)
            self.current = self.current or kid

    @property
    def enabled(self) -> bool:
        return self.current is not None

    def encrypt(self, value: str | None) -> str | None:
        if value is None or not self.enabled:
            return value
        nonce = os.urandom(12)
        sealed = self.keys[self.current].encrypt(nonce, value.encode(), self.current.encode())
        return f"{PREFIX}{self.current}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, value: str | None) -> str | None:
        if value is None or not value.startswith(PREFIX):
            return value
        kid, _, b64 = value[len(PREFIX):].partition(":")
        key = self.keys.get(kid)
        if key is None:
            raise FieldKeyError(f"no key {kid!r} in FIELD_ENCRYPTION_KEY to decrypt a stored token")
        raw = base64.b64decode(b64)
        return key.decrypt(raw[:12], raw[12:], kid.encode()).decode()

    def encrypt_account(self, fields: dict) -> dict:
        if self.enabled:
            for name in ENCRYPTED_ACCOUNT_FIELDS:
                fields[name] = self.encrypt(fields.get(name))
        return fields

    def decrypt_account(self, row) -> dict:
        account = dict(row)
        for name in ENCRYPTED_ACCOUNT_FIELDS:
            account[name] = self.decrypt(account.get(name))
        return account
