"""Field encryption at rest for OAuth tokens (AES-256-GCM), with key ids so keys can rotate.

FIELD_ENCRYPTION_KEY = "kid:base64key,oldkid:base64key": the first key encrypts; any listed key
decrypts. A stored value looks like `enc:v2:<kid>:<base64(nonce + ciphertext)>`. Its associated data
binds the key id, the table, the column and the row id, so a value copied into another row or column
does not decrypt. Values written before (`enc:v1:`, associated data = the key id only) still decrypt;
`python -m service reencrypt` (reencrypt.py) rewrites every row to v2 under the newest key, after which
old keys can be removed. A value without the prefix was stored before encryption was turned on and is
returned as it is.

A value that cannot be decrypted (its key is gone, the key is wrong, the text is corrupt or was copied
from another row) never fails the whole answer: the field is null and `tokenErrors` names it.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "enc:v2:"
LEGACY_PREFIX = "enc:v1:"
ENCRYPTED_ACCOUNT_FIELDS = ("access_token", "refresh_token", "id_token")
ACCOUNTS_TABLE = "accounts"


class FieldKeyError(ValueError):
    pass


class UndecryptableError(ValueError):
    """A stored value that this service cannot decrypt; the message says why, never the value."""


def looks_encrypted(value: str | None) -> bool:
    return value is not None and value.startswith(("enc:v1:", "enc:v2:"))


def _associated_data(kid: str, table: str, column: str, row_id: str) -> bytes:
    # Unit separators: none of the parts can contain one, so no two different tuples give the same bytes.
    return "\x1f".join(("aw-field", kid, table, column, row_id)).encode()


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
            if "\x1f" in kid or ":" in kid:
                raise FieldKeyError(f"FIELD_ENCRYPTION_KEY {kid!r}: a key id has no ':' or control characters")
            self.keys[kid] = AESGCM(key)
            self.current = self.current or kid

    @property
    def enabled(self) -> bool:
        return self.current is not None

    def encrypt(self, value: str | None, table: str, column: str, row_id: str) -> str | None:
        if value is None or not self.enabled:
            return value
        nonce = os.urandom(12)
        sealed = self.keys[self.current].encrypt(
            nonce, value.encode(), _associated_data(self.current, table, column, row_id))
        return f"{PREFIX}{self.current}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, value: str | None, table: str, column: str, row_id: str) -> str | None:
        """The plain text; raises UndecryptableError for a value no configured key can open."""
        if value is None or not looks_encrypted(value):
            return value
        legacy = value.startswith(LEGACY_PREFIX)
        kid, _, b64 = value[len(PREFIX):].partition(":")  # both prefixes have the same length
        key = self.keys.get(kid)
        if key is None:
            raise UndecryptableError(f"no key {kid!r} in FIELD_ENCRYPTION_KEY")
        try:
            raw = base64.b64decode(b64, validate=True)
            aad = kid.encode() if legacy else _associated_data(kid, table, column, row_id)
            return key.decrypt(raw[:12], raw[12:], aad).decode()
        except (binascii.Error, ValueError, InvalidTag):
            # InvalidTag: the wrong key, a corrupt text, or a value copied from another row or column.
            raise UndecryptableError(f"stored value does not decrypt with key {kid!r}") from None

    def is_current(self, value: str | None) -> bool:
        """Already as reencrypt would write it (or nothing to encrypt)."""
        if value is None or not self.enabled:
            return True
        return value.startswith(f"{PREFIX}{self.current}:")

    def encrypt_account(self, fields: dict, account_id: str) -> dict:
        if self.enabled:
            for name in ENCRYPTED_ACCOUNT_FIELDS:
                fields[name] = self.encrypt(fields.get(name), ACCOUNTS_TABLE, name, account_id)
        return fields

    def decrypt_account(self, row) -> dict:
        """The account with its tokens in clear; a token that does not decrypt is null and named in
        `tokenErrors` (one bad field never fails the whole answer)."""
        account = dict(row)
        errors = {}
        for name in ENCRYPTED_ACCOUNT_FIELDS:
            try:
                account[name] = self.decrypt(account.get(name), ACCOUNTS_TABLE, name, account["id"])
            except UndecryptableError as exc:
                account[name] = None
                errors[name] = str(exc)
        if errors:
            account["tokenErrors"] = errors
        return account


def without_tokens(account: dict) -> dict:
    """What a read-scope caller sees: OAuth tokens are for the write-scope (Auth.js) caller only."""
    for name in ENCRYPTED_ACCOUNT_FIELDS:
        account[name] = None
    account.pop("tokenErrors", None)
    return account
