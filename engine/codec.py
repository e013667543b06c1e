"""Optional payload encryption: an AES-GCM payload codec with key ids, configured by environment.

Temporal stores every workflow input, node output, query and update result, memo, heartbeat
detail and failure in its database and shows them in Temporal UI. With encryption on, the
client and the workers encrypt those payloads before they leave the process, so the server,
its database and its backups only ever hold ciphertext. See docs/SECURITY.md for what stays
readable (ids, type names, search attributes, timings).

Environment (at most one of the two; neither: no encryption):

``ORCHESTRATOR_ENCRYPTION_KEYS``
    ``id:base64key[,id:base64key...]``, e.g. ``k2:<base64>,k1:<base64>``. The first key is
    the current one: new payloads are encrypted with it. The others only decrypt, so
    histories written before a rotation stay readable.
``ORCHESTRATOR_ENCRYPTION_KEYS_FILE``
    A file with the same entries, one per line or comma-separated; lines starting with
    ``#`` are comments (for secrets mounted as files).

A key id is 1-64 ASCII letters, digits, ``_ . -``; a key is 16, 24 or 32 random bytes
(AES-128/192/256; use 32), base64 (standard or URL-safe alphabet). ``python -m engine.codec
ID`` prints a new entry.

Wire format: an encrypted payload has the metadata ``encoding: binary/encrypted`` and
``encryption-key-id: <id>``; its data is a fresh random 12-byte nonce followed by the
AES-GCM ciphertext and tag of the whole original payload (its metadata too, so even the
original encoding is hidden), with the key id as associated data. Decoding picks the key by
that id; payloads without the encrypted encoding pass through, so histories written before
encryption was turned on stay readable.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from engine.errors import PluginError, PluginErrorCode

KEYS_VARIABLE = "ORCHESTRATOR_ENCRYPTION_KEYS"
KEYS_FILE_VARIABLE = "ORCHESTRATOR_ENCRYPTION_KEYS_FILE"
ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
NONCE_BYTES = 12
KEY_SIZES = (16, 24, 32)
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class EncryptionCodec(PayloadCodec):
    """Encrypts with the first key, decrypts with whichever key a payload names.

    Args:
        keys: ``(key id, key bytes)`` pairs, the current key first.

    Raises:
        ValueError: No keys, a duplicate or malformed id, or a key of the wrong size.
    """

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._ciphers: dict[str, AESGCM] = {}
        for key_id, key in keys:
            if not _KEY_ID.fullmatch(key_id):
                raise ValueError(f"key id {key_id!r} is not 1-64 of A-Z a-z 0-9 _ . -")
            if key_id in self._ciphers:
                raise ValueError(f"key id '{key_id}' appears twice")
            if len(key) not in KEY_SIZES:
                raise ValueError(f"key '{key_id}' has {len(key)} bytes; AES needs 16, 24 or 32")
            self._ciphers[key_id] = AESGCM(key)
        self.current_key_id = keys[0][0]

    @property
    def key_ids(self) -> list[str]:
        """The configured key ids, the current one first."""
        return list(self._ciphers)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        """The payload encrypted with the current key (an encrypted one is left as is, so
        a payload passed through twice is not wrapped twice)."""
        if payload.metadata.get("encoding") == ENCODING:
            return payload
        key_id = self.current_key_id
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(), key_id.encode())
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        """The original payload (one that is not encrypted passes through).

        Raises:
            PluginError: ``InvalidConfiguration`` naming the key id when that key is not
                configured, or when the data does not decrypt with it.
        """
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode("utf-8", "replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PluginError(
                PluginErrorCode.InvalidConfiguration,
                f"payload is encrypted with key '{key_id}', which is not configured "
                f"(configured: {', '.join(self._ciphers)}); add it to {KEYS_VARIABLE} or "
                f"{KEYS_FILE_VARIABLE} as a decrypt-only key after the current one",
                {"key_id": key_id},
            )
        data = payload.data
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], key_id.encode())
        except InvalidTag:
            raise PluginError(
                PluginErrorCode.InvalidConfiguration,
                f"payload encrypted with key '{key_id}' does not decrypt: the configured key "
                "material for that id is wrong, or the payload was altered",
                {"key_id": key_id},
            ) from None
        original = Payload()
        original.ParseFromString(plain)
        return original


def parse_keys(text: str, source: str) -> list[tuple[str, bytes]]:
    """Key entries (``id:base64key``, separated by commas or new lines, ``#`` comments).

    Args:
        source: What the text came from, named in errors (never the key material).

    Raises:
        PluginError: ``InvalidConfiguration`` naming ``source`` and the bad entry.
    """
    entries = [
        entry.strip()
        for line in text.splitlines()
        if not line.strip().startswith("#")
        for entry in line.split(",")
        if entry.strip()
    ]
    if not entries:
        raise _config_error(source, "holds no key (expected id:base64key[,id:base64key...])")
    keys: list[tuple[str, bytes]] = []
    for number, entry in enumerate(entries, 1):
        key_id, separator, encoded = (part.strip() for part in entry.partition(":"))
        if not separator:
            raise _config_error(source, f"entry {number} is not of the form id:base64key")
        try:
            key = base64.b64decode(_standard_alphabet(encoded), validate=True)
        except (binascii.Error, ValueError):
            raise _config_error(source, f"key '{key_id}' (entry {number}) is not base64") from None
        keys.append((key_id, key))
    try:
        EncryptionCodec(keys)  # the same checks the codec makes, reported against source
    except ValueError as exc:
        raise _config_error(source, str(exc)) from None
    return keys


def codec_from_env(environ: Mapping[str, str] | None = None) -> EncryptionCodec | None:
    """The codec the environment configures, or None when encryption is off.

    Raises:
        PluginError: ``InvalidConfiguration`` naming the variable: both variables set, an
            unreadable key file, or bad key material.
    """
    env = os.environ if environ is None else environ
    inline, file_name = env.get(KEYS_VARIABLE, "").strip(), env.get(KEYS_FILE_VARIABLE, "")
    if inline and file_name.strip():
        raise PluginError(
            PluginErrorCode.InvalidConfiguration,
            f"set {KEYS_VARIABLE} or {KEYS_FILE_VARIABLE}, not both",
        )
    if inline:
        return EncryptionCodec(parse_keys(inline, KEYS_VARIABLE))
    if file_name.strip():
        try:
            text = Path(file_name.strip()).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise _config_error(KEYS_FILE_VARIABLE, f"cannot be read: {exc}") from None
        return EncryptionCodec(parse_keys(text, f"{KEYS_FILE_VARIABLE} ({file_name.strip()})"))
    return None


def new_key_entry(key_id: str) -> str:
    """A fresh ``id:base64key`` entry with a random 256-bit key."""
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


def _standard_alphabet(encoded: str) -> str:
    """Accept the URL-safe alphabet and missing padding too (what key tools print varies)."""
    encoded = encoded.replace("-", "+").replace("_", "/")
    return encoded + "=" * (-len(encoded) % 4)


def _config_error(source: str, problem: str) -> PluginError:
    return PluginError(PluginErrorCode.InvalidConfiguration, f"{source}: {problem}")


if __name__ == "__main__":  # pragma: no cover - a convenience for operators
    print(new_key_entry(sys.argv[1] if len(sys.argv) > 1 else "k1"))
