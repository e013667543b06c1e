"""The encryption codec and its configuration, without a server."""

from __future__ import annotations

import base64
import traceback
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError

from engine import PluginError, PluginErrorCode
from engine.hosting.codec import (
    ALLOW_PLAINTEXT_VARIABLE,
    ENCODING,
    KEY_ID_METADATA,
    KEYS_FILE_VARIABLE,
    KEYS_VARIABLE,
    REFUSED_PLAINTEXT_ENCODING,
    UNDECRYPTABLE_ENCODING,
    EncryptionCodec,
    EnginePayloadConverter,
    codec_from_env,
    new_key_entry,
    parse_keys,
)
from engine.hosting.connection import PLAIN_CONVERTER, data_converter

K1 = bytes(range(32))
K2 = bytes(range(32, 64))
SECRET = "card 4111-1111-1111-1111"


def plain(text: str = SECRET) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=f'"{text}"'.encode())


def entry(key_id: str, key: bytes) -> str:
    return f"{key_id}:{base64.b64encode(key).decode()}"


async def test_round_trip_hides_data_and_encoding() -> None:
    codec = EncryptionCodec([("k1", K1)])
    [sealed] = await codec.encode([plain()])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID_METADATA] == b"k1"
    assert SECRET.encode() not in sealed.SerializeToString()
    assert b"json/plain" not in sealed.SerializeToString()
    assert await codec.decode([sealed]) == [plain()]


async def test_every_encryption_uses_a_fresh_nonce() -> None:
    codec = EncryptionCodec([("k1", K1)])
    first, second = await codec.encode([plain(), plain()])
    assert first.data != second.data


async def test_rotation_keeps_old_payloads_readable() -> None:
    [old] = await EncryptionCodec([("k1", K1)]).encode([plain()])
    rotated = EncryptionCodec([("k2", K2), ("k1", K1)])
    assert rotated.current_key_id == "k2"
    assert await rotated.decode([old]) == [plain()]
    [new] = await rotated.encode([plain()])
    assert new.metadata[KEY_ID_METADATA] == b"k2"


def converter_with(codec: EncryptionCodec | None) -> DataConverter:
    """The engine's converter with this codec (what connect() builds from the environment)."""
    return DataConverter(payload_converter_class=EnginePayloadConverter, payload_codec=codec)


async def test_unknown_key_id_is_named() -> None:
    """The codec never raises (an error while decoding a workflow activation would wedge
    the run): the payload stays sealed and the converter names the key where it is used."""
    [old] = await EncryptionCodec([("k1", K1)]).encode([plain()])
    assert await EncryptionCodec([("k2", K2)]).decode([old]) == [old]
    with pytest.raises(PluginError) as caught:
        await converter_with(EncryptionCodec([("k2", K2)])).decode([old])
    assert caught.value.code is PluginErrorCode.InvalidConfiguration
    assert "'k1'" in caught.value.message
    assert KEYS_VARIABLE in caught.value.message
    assert caught.value.details == {"key_id": "k1"}


async def test_a_process_without_keys_names_the_missing_key() -> None:
    """Issue 11, item 13: was the SDK's bare ``KeyError: Unknown payload encoding``."""
    [sealed] = await EncryptionCodec([("k7", K1)]).encode([plain()])
    with pytest.raises(PluginError) as caught:
        await PLAIN_CONVERTER.decode([sealed])
    assert caught.value.code is PluginErrorCode.InvalidConfiguration
    assert "encrypted with key 'k7', which this process does not have" in caught.value.message
    assert KEYS_VARIABLE in caught.value.message


async def test_wrong_key_material_or_tampering_fails_clearly() -> None:
    [sealed] = await EncryptionCodec([("k1", K1)]).encode([plain()])
    [marked] = await EncryptionCodec([("k1", K2)]).decode([sealed])
    assert marked.metadata["encoding"] == UNDECRYPTABLE_ENCODING
    with pytest.raises(PluginError, match="'k1' does not decrypt"):
        await converter_with(EncryptionCodec([("k1", K2)])).decode([sealed])
    tampered = Payload()
    tampered.CopyFrom(sealed)
    tampered.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(PluginError, match="does not decrypt"):
        await converter_with(EncryptionCodec([("k1", K1)])).decode([tampered])


async def test_a_swapped_key_id_does_not_decrypt() -> None:
    """The key id is authenticated: relabelling a payload does not pass."""
    codec = EncryptionCodec([("k1", K1), ("k2", K1)])
    [sealed] = await codec.encode([plain()])
    sealed.metadata[KEY_ID_METADATA] = b"k2"
    with pytest.raises(PluginError, match="'k2' does not decrypt"):
        await converter_with(codec).decode([sealed])


async def test_plaintext_is_refused_unless_allowed() -> None:
    codec = EncryptionCodec([("k1", K1)])
    [marked] = await codec.decode([plain()])
    assert marked.metadata["encoding"] == REFUSED_PLAINTEXT_ENCODING
    assert SECRET.encode() not in marked.SerializeToString()  # nothing of it goes further
    with pytest.raises(PluginError) as caught:
        await converter_with(codec).decode([plain()])
    assert caught.value.code is PluginErrorCode.InvalidInput
    assert "refused a plaintext payload (encoding 'json/plain')" in caught.value.message
    assert ALLOW_PLAINTEXT_VARIABLE in caught.value.message

    migrating = EncryptionCodec([("k1", K1)], allow_plaintext=True)
    assert await migrating.decode([plain()]) == [plain()]
    assert await converter_with(migrating).decode([plain()]) == [SECRET]


@pytest.mark.parametrize(
    ("value", "allowed"), [("", False), ("0", False), ("1", True), ("yes", True)]
)
def test_the_plaintext_switch(value: str, allowed: bool) -> None:
    codec = codec_from_env({KEYS_VARIABLE: entry("k1", K1), ALLOW_PLAINTEXT_VARIABLE: value})
    assert codec is not None
    assert codec.allow_plaintext is allowed


def test_a_bad_plaintext_switch_is_named() -> None:
    with pytest.raises(PluginError, match=f"{ALLOW_PLAINTEXT_VARIABLE}: must be 1 or 0"):
        codec_from_env({KEYS_VARIABLE: entry("k1", K1), ALLOW_PLAINTEXT_VARIABLE: "maybe"})


async def test_nothing_is_wrapped_twice() -> None:
    codec = EncryptionCodec([("k1", K1)])
    [sealed] = await codec.encode([plain()])
    assert await codec.encode([sealed]) == [sealed]


def test_parse_keys_accepts_lists_files_and_url_safe_base64() -> None:
    text = f"# rotated 2026-01\n{entry('k2', K2)}\n\n{entry('k1', K1)},\n"
    assert parse_keys(text, "test") == [("k2", K2), ("k1", K1)]
    url_safe = base64.urlsafe_b64encode(K1).decode().rstrip("=")
    assert parse_keys(f"k1:{url_safe}", "test") == [("k1", K1)]
    generated = new_key_entry("k9")
    assert parse_keys(generated, "test")[0][0] == "k9"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "holds no key"),
        ("k1", "entry 1 is not of the form id:base64key"),
        ("k1:not base64!", "key 'k1' (entry 1) is not base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "has 5 bytes"),
        (f"{entry('k1', K1)},{entry('k1', K2)}", "appears twice"),
        (f"bad id:{base64.b64encode(K1).decode()}", "key id 'bad id'"),
    ],
)
def test_bad_key_material_names_the_variable(value: str, problem: str) -> None:
    with pytest.raises(PluginError) as caught:
        codec_from_env({KEYS_VARIABLE: value or " , "})
    assert caught.value.code is PluginErrorCode.InvalidConfiguration
    assert caught.value.message.startswith(f"{KEYS_VARIABLE}: ")
    assert problem in caught.value.message
    assert base64.b64encode(K1).decode() not in caught.value.message  # never the key


def test_key_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"{entry('k2', K2)}\n{entry('k1', K1)}\n")
    codec = codec_from_env({KEYS_FILE_VARIABLE: str(keys)})
    assert codec is not None
    assert codec.key_ids == ["k2", "k1"]
    with pytest.raises(PluginError, match=f"{KEYS_FILE_VARIABLE}: cannot be read"):
        codec_from_env({KEYS_FILE_VARIABLE: str(tmp_path / "missing")})
    keys.write_text("k1:???\n")
    with pytest.raises(PluginError, match=f"{KEYS_FILE_VARIABLE} \\(.*keys\\): key 'k1'"):
        codec_from_env({KEYS_FILE_VARIABLE: str(keys)})
    with pytest.raises(PluginError, match="not both"):
        codec_from_env({KEYS_FILE_VARIABLE: str(keys), KEYS_VARIABLE: entry("k1", K1)})


def test_no_keys_no_encryption(monkeypatch: pytest.MonkeyPatch) -> None:
    assert codec_from_env({}) is None
    monkeypatch.delenv(KEYS_VARIABLE, raising=False)
    monkeypatch.delenv(KEYS_FILE_VARIABLE, raising=False)
    assert data_converter() is PLAIN_CONVERTER


async def test_data_converter_encrypts_payloads_and_failure_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(KEYS_FILE_VARIABLE, raising=False)
    monkeypatch.setenv(KEYS_VARIABLE, entry("k1", K1))
    converter = data_converter()
    [payload] = await converter.encode([{"secret": SECRET}])
    assert payload.metadata["encoding"] == ENCODING
    assert await converter.decode([payload]) == [{"secret": SECRET}]

    try:
        raise ApplicationError(f"failed on {SECRET}", {"row": SECRET}, type="ValueError")
    except ApplicationError as exc:
        error = exc
        assert traceback.format_exc()
    failure = Failure()
    await converter.encode_failure(error, failure)
    assert SECRET.encode() not in failure.SerializeToString()
    assert failure.message == "Encoded failure"
    assert failure.application_failure_info.type == "ValueError"  # types stay readable
    decoded = await converter.decode_failure(failure)
    assert isinstance(decoded, ApplicationError)
    assert decoded.message == f"failed on {SECRET}"
    assert decoded.details == ({"row": SECRET},)
