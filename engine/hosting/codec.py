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
``ORCHESTRATOR_ALLOW_PLAINTEXT_PAYLOADS``
    ``1`` (or ``true``, ``yes``) lets payloads without encryption through while keys are
    configured: only for migrating histories written before encryption was turned on.
    Default: refused (see below).

A key id is 1-64 ASCII letters, digits, ``_ . -``; a key is 16, 24 or 32 random bytes
(AES-128/192/256; use 32), base64 (standard or URL-safe alphabet). ``python -m engine.hosting.codec
ID`` prints a new entry.

Wire format: an encrypted payload has the metadata ``encoding: binary/encrypted`` and
``encryption-key-id: <id>``; its data is a fresh random 12-byte nonce followed by the
AES-GCM ciphertext and tag of the whole original payload (its metadata too, so even the
original encoding is hidden), with the key id as associated data. Decoding picks the key by
that id.

Refusal: with encryption on, anyone who can reach Temporal but holds no key could still send
a plaintext signal, update or start input. Such a payload is refused by default. The codec
never raises while decoding, because the SDK decodes a whole workflow activation at once and
a codec error there fails the workflow task again and again (one bad signal would wedge any
run). Instead a payload the codec cannot or will not open is handed on *marked*, and the
engine's payload converter (:class:`EnginePayloadConverter`, on every client and worker,
with or without keys) raises a :class:`~engine.base.errors.PluginError` naming the problem where
the value is used: the SDK then drops such a signal with a logged error, rejects such an
update, fails such a query or activity attempt, and fails (and retries) the workflow task of
a run whose own input cannot be read. The marks:

* a plaintext payload becomes ``encoding: binary/refused-plaintext`` (its data dropped;
  ``refused-encoding`` tells what it claimed to be) -> ``InvalidInput``;
* a payload encrypted with a key this process lacks stays ``binary/encrypted`` ->
  ``InvalidConfiguration`` naming the key id and the variables to set (also what a process
  with no keys at all says, instead of the SDK's bare ``KeyError``);
* a payload that does not decrypt with its key (wrong key material, altered data) becomes
  ``binary/undecryptable`` -> ``InvalidConfiguration``.
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
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import EncodingPayloadConverter, PayloadCodec

from engine.base.errors import PluginError, PluginErrorCode

KEYS_VARIABLE = "ORCHESTRATOR_ENCRYPTION_KEYS"
KEYS_FILE_VARIABLE = "ORCHESTRATOR_ENCRYPTION_KEYS_FILE"
ALLOW_PLAINTEXT_VARIABLE = "ORCHESTRATOR_ALLOW_PLAINTEXT_PAYLOADS"
ENCODING = b"binary/encrypted"
REFUSED_PLAINTEXT_ENCODING = b"binary/refused-plaintext"
UNDECRYPTABLE_ENCODING = b"binary/undecryptable"
KEY_ID_METADATA = "encryption-key-id"
REFUSED_ENCODING_METADATA = "refused-encoding"
NONCE_BYTES = 12
KEY_SIZES = (16, 24, 32)
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class EncryptionCodec(PayloadCodec):
    """Encrypts with the first key, decrypts with whichever key a payload names.

    Args:
        keys: ``(key id, key bytes)`` pairs, the current key first.
        allow_plaintext: Let payloads without encryption through (migration only); by
            default they are refused (see the module docstring).

    Raises:
        ValueError: No keys, a duplicate or malformed id, or a key of the wrong size.
    """

    def __init__(self, keys: Sequence[tuple[str, bytes]], *, allow_plaintext: bool = False) -> None:
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
        self.allow_plaintext = allow_plaintext

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
        """The original payload, or the payload marked for the converter to refuse.

        Never raises (see the module docstring): a plaintext payload comes back as
        ``binary/refused-plaintext`` (unless plaintext is allowed), one whose key is not
        configured here stays ``binary/encrypted``, one that does not decrypt comes back as
        ``binary/undecryptable``. :class:`EnginePayloadConverter` explains each.
        """
        if payload.metadata.get("encoding") != ENCODING:
            return payload if self.allow_plaintext else _refused_plaintext(payload)
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode("utf-8", "replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            return payload
        data = payload.data
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], key_id.encode())
        except InvalidTag:
            return Payload(
                metadata={"encoding": UNDECRYPTABLE_ENCODING, KEY_ID_METADATA: key_id.encode()}
            )
        original = Payload()
        original.ParseFromString(plain)
        return original


def _refused_plaintext(payload: Payload) -> Payload:
    claimed = payload.metadata.get("encoding", b"none")[:64]
    return Payload(
        metadata={"encoding": REFUSED_PLAINTEXT_ENCODING, REFUSED_ENCODING_METADATA: claimed}
    )


class _Refusal(EncodingPayloadConverter):
    """Reads one of the codec's marks as the error it stands for; writes nothing."""

    def __init__(self, encoding: bytes) -> None:
        self._encoding = encoding

    @property
    def encoding(self) -> str:
        return self._encoding.decode()

    def to_payload(self, value: Any) -> Payload | None:
        return None

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        raise refusal_error(payload)


def refusal_error(payload: Payload) -> PluginError:
    """The error a payload marked by :meth:`EncryptionCodec.decrypt` stands for."""
    encoding = payload.metadata.get("encoding")
    key_id = _metadata_text(payload, KEY_ID_METADATA)
    if encoding == REFUSED_PLAINTEXT_ENCODING:
        claimed = _metadata_text(payload, REFUSED_ENCODING_METADATA)
        return PluginError(
            PluginErrorCode.InvalidInput,
            f"refused a plaintext payload (encoding '{claimed}'): encryption is on, so every "
            "payload must be encrypted with a configured key. It was sent by someone without "
            f"the keys, or written before encryption was turned on (set "
            f"{ALLOW_PLAINTEXT_VARIABLE}=1 while migrating such histories)",
            {"encoding": claimed},
        )
    if encoding == UNDECRYPTABLE_ENCODING:
        return PluginError(
            PluginErrorCode.InvalidConfiguration,
            f"payload encrypted with key '{key_id}' does not decrypt: the configured key "
            "material for that id is wrong, or the payload was altered",
            {"key_id": key_id},
        )
    return PluginError(
        PluginErrorCode.InvalidConfiguration,
        f"payload is encrypted with key '{key_id}', which this process does not have; add "
        f"that key to {KEYS_VARIABLE} or {KEYS_FILE_VARIABLE} (as a decrypt-only key after "
        "the current one if it is an old key)",
        {"key_id": key_id},
    )


def _metadata_text(payload: Payload, name: str) -> str:
    return payload.metadata.get(name, b"").decode("utf-8", "replace")[:64]


class EnginePayloadConverter(PydanticPayloadConverter):
    """Pydantic JSON payloads, plus the codec's marks read as clear errors (see the module
    docstring): also in a process without keys, which would otherwise fail on an
    encrypted payload with the SDK's bare ``KeyError: Unknown payload encoding``."""

    def __init__(self) -> None:
        super().__init__()
        refusals = (ENCODING, REFUSED_PLAINTEXT_ENCODING, UNDECRYPTABLE_ENCODING)
        self._set_converters(*self.converters.values(), *map(_Refusal, refusals))


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
            unreadable key file, bad key material, or a plaintext switch that is not a
            yes or no.
    """
    env = os.environ if environ is None else environ
    keys = _keys_from_env(env)
    if keys is None:
        return None
    return EncryptionCodec(keys, allow_plaintext=_allow_plaintext(env))


def _allow_plaintext(env: Mapping[str, str]) -> bool:
    value = env.get(ALLOW_PLAINTEXT_VARIABLE, "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise _config_error(ALLOW_PLAINTEXT_VARIABLE, f"must be 1 or 0, got {value!r}")


def _keys_from_env(env: Mapping[str, str]) -> list[tuple[str, bytes]] | None:
    inline, file_name = env.get(KEYS_VARIABLE, "").strip(), env.get(KEYS_FILE_VARIABLE, "")
    if inline and file_name.strip():
        raise PluginError(
            PluginErrorCode.InvalidConfiguration,
            f"set {KEYS_VARIABLE} or {KEYS_FILE_VARIABLE}, not both",
        )
    if inline:
        return parse_keys(inline, KEYS_VARIABLE)
    if file_name.strip():
        try:
            text = Path(file_name.strip()).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise _config_error(KEYS_FILE_VARIABLE, f"cannot be read: {exc}") from None
        return parse_keys(text, f"{KEYS_FILE_VARIABLE} ({file_name.strip()})")
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
