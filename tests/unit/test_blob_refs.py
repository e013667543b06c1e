"""Which references the blob store resolves: signed ones of the execution's own tree, with
every part checked and every path inside the store; its key. The same attacks through a
real workflow: tests/security/test_blob_refs.py."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from engine.temporal.blobs import (
    KEY_FILE_NAME,
    REF_KEY,
    SIGNATURE_KEY,
    BlobIntegrityError,
    BlobKey,
    BlobReferenceError,
    BlobStore,
    BlobStoreError,
    LocalBlobStore,
    S3BlobStore,
)

RUN = "wf/run-0123456789abcdef"


@pytest.fixture(name="store")
def fixture_store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


@pytest.fixture(name="outside")
def fixture_outside(tmp_path: Path) -> Path:
    path = tmp_path / "secret.json"
    path.write_text(json.dumps({"secret": "TOP-SECRET"}))
    return path


def stored(store: BlobStore, execution_id: str, value: Any) -> dict[str, Any]:
    """A reference the store made to ``value``, stored for ``execution_id``."""
    data = json.dumps(value).encode()
    return store.make_ref(execution_id, store.put(execution_id, data), len(data), "")


def forged(store: LocalBlobStore, outside: Path) -> dict[str, Any]:
    """Values shaped like references that the engine did not make, by what is wrong."""
    real = stored(store, RUN, "real")
    digest = real[REF_KEY]
    other_key = BlobKey.generate()
    stem = str(outside.with_suffix(""))
    upward = os.path.relpath(stem, store.root / "wf_run-0123456789abcdef")
    return {
        "absolute path": {**real, REF_KEY: f"sha256:{stem}"},
        "dotdot digest": {**real, REF_KEY: f"sha256:{upward}"},
        "dotdot execution": {**real, "execution_id": ".."},
        "hidden execution": {**real, "execution_id": KEY_FILE_NAME},
        "absolute execution": {**real, "execution_id": "/"},
        "uppercase digest": {**real, REF_KEY: digest.upper()},
        "short digest": {**real, REF_KEY: digest[:-1]},
        "md5": {**real, REF_KEY: "md5:" + "0" * 32},
        "no execution": {key: value for key, value in real.items() if key != "execution_id"},
        "bytes as text": {**real, "bytes": str(real["bytes"])},
        "bytes as bool": {**real, "bytes": True},
        "negative bytes": {**real, "bytes": -1},
        "unsigned": {key: value for key, value in real.items() if key != SIGNATURE_KEY},
        "malformed signature": {**real, SIGNATURE_KEY: "trust me"},
        "signature not text": {**real, SIGNATURE_KEY: ["hmac-sha256"]},
        "other key": {**real, SIGNATURE_KEY: other_key.sign(RUN, digest, real["bytes"])},
        "other size": {**real, "bytes": real["bytes"] + 1},
        "other execution": {**real, "execution_id": "wf/run-fedcba9876543210"},
        "other digest": {**real, REF_KEY: "sha256:" + "0" * 64},
    }


FORGED = [
    "absolute path",
    "dotdot digest",
    "dotdot execution",
    "hidden execution",
    "absolute execution",
    "uppercase digest",
    "short digest",
    "md5",
    "no execution",
    "bytes as text",
    "bytes as bool",
    "negative bytes",
    "unsigned",
    "malformed signature",
    "signature not text",
    "other key",
    "other size",
    "other execution",
    "other digest",
]


@pytest.mark.parametrize("variant", FORGED)
def test_a_forged_reference_is_plain_data_and_get_refuses_it(
    store: LocalBlobStore, outside: Path, variant: str
) -> None:
    ref = forged(store, outside)[variant]
    value = {"port": {"data": ref, "n": 1}}
    with capture_logs() as logs:
        assert store.resolve(value, within=RUN) == value
    assert [entry["event"] for entry in logs] == [
        "a value shaped like a blob reference is passed on as data"
    ]
    with pytest.raises(BlobReferenceError, match="blob reference") as caught:
        store.get(ref)
    assert "TOP-SECRET" not in str(caught.value)


def test_what_a_refused_reference_is_told(store: LocalBlobStore, outside: Path) -> None:
    refs = forged(store, outside)
    expected = {
        "absolute path": "not 'sha256:' and 64 lowercase hex digits",
        "dotdot execution": "'..' is not an execution id",
        "bytes as bool": "'bytes' is not a byte count",
        "unsigned": "is not signed: not made by this engine, or made before",
        "malformed signature": "its signature is malformed",
        "other key": "its signature is by key",
        "other size": "its signature does not verify",
    }
    for variant, message in expected.items():
        with pytest.raises(BlobReferenceError, match=message):
            store.get(refs[variant])
    with pytest.raises(BlobReferenceError, match="not a blob reference"):
        store.get(["sha256:" + "0" * 64])


def test_a_node_resolves_references_of_its_own_execution_tree_only(
    store: LocalBlobStore,
) -> None:
    parent = stored(store, RUN, "parent's")
    child = stored(store, f"{RUN}/inner", "child's")
    grandchild = stored(store, f"{RUN}/inner/deeper#2", "grandchild's")
    value = {"a": parent, "b": child, "c": grandchild}
    resolved = {"a": "parent's", "b": "child's", "c": "grandchild's"}
    assert store.resolve(value, within=RUN) == resolved
    assert store.resolve(value, within=f"{RUN}/inner") == resolved
    assert store.resolve(value, within=f"{RUN}/split-items-0-9") == resolved
    # Another run of the same workflow, and one whose id starts with this one's.
    for other in ("wf/run-fedcba9876543210", f"{RUN}0", "wf"):
        assert store.resolve(value, within=other) == value
    # read_blob's get has no tree: its caller can read any execution's blobs.
    assert store.get(grandchild) == "grandchild's"


def test_a_signed_reference_never_reads_through_a_symlink_out_of_the_store(
    store: LocalBlobStore, outside: Path
) -> None:
    # Even with the right digest and size (someone with access to the store planted it).
    data = outside.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    directory = store.root / "wf_run-0123456789abcdef"
    directory.mkdir(parents=True)
    (directory / f"{digest}.json").symlink_to(outside)
    ref = store.make_ref(RUN, f"sha256:{digest}", len(data), "")
    with pytest.raises(BlobIntegrityError, match="outside the blob store") as caught:
        store.get(ref)
    assert "TOP-SECRET" not in str(caught.value)
    with pytest.raises(BlobIntegrityError, match="outside the blob store"):
        store.resolve({"x": ref}, within=RUN)


def test_a_symlinked_execution_directory_is_neither_read_nor_written(
    store: LocalBlobStore, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    data = b'"value"'
    digest = hashlib.sha256(data).hexdigest()
    (elsewhere / f"{digest}.json").write_bytes(data)
    store.root.mkdir()
    (store.root / "wf_run-0123456789abcdef").symlink_to(elsewhere)
    with pytest.raises(BlobIntegrityError, match="outside the blob store"):
        store.get(store.make_ref(RUN, f"sha256:{digest}", len(data), ""))
    with pytest.raises(BlobIntegrityError, match="outside the blob store"):
        store.put(RUN, b'"other"')
    assert sorted(path.name for path in elsewhere.iterdir()) == [f"{digest}.json"]


def test_gc_never_deletes_through_a_symlinked_directory(
    store: LocalBlobStore, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "execution_id.txt").write_text("wf/run-x")
    (elsewhere / "keep.txt").write_text("keep")
    store.root.mkdir()
    (store.root / "wf_run-x").symlink_to(elsewhere)
    [(owner, directory, _)] = store.executions()
    assert owner == "wf/run-x"
    store.remove(directory)
    assert (elsewhere / "keep.txt").read_text() == "keep"


def test_a_blob_whose_content_changed_is_refused(store: LocalBlobStore) -> None:
    ref = stored(store, RUN, "x" * 100)
    path = store.root / "wf_run-0123456789abcdef" / f"{ref[REF_KEY].removeprefix('sha256:')}.json"
    path.write_text(json.dumps("y" * 100))  # same size
    with pytest.raises(BlobIntegrityError, match="does not match its digest"):
        store.get(ref)
    path.write_text(json.dumps("x" * 100) + " " * 10_000_000)  # longer: not read whole
    with pytest.raises(BlobIntegrityError, match="does not match its digest"):
        store.get(ref)


def test_a_fifo_in_place_of_a_blob_is_refused_without_blocking(store: LocalBlobStore) -> None:
    ref = stored(store, RUN, "value")
    path = store.root / "wf_run-0123456789abcdef" / f"{ref[REF_KEY].removeprefix('sha256:')}.json"
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(BlobIntegrityError, match="is not a file"):
        store.get(ref)


def test_the_owner_file_is_replaced_not_written_through_a_symlink(
    store: LocalBlobStore, outside: Path
) -> None:
    directory = store.root / "wf_run-0123456789abcdef"
    directory.mkdir(parents=True)
    (directory / "execution_id.txt").symlink_to(outside)
    store.put(RUN, b'"value"')
    assert json.loads(outside.read_text()) == {"secret": "TOP-SECRET"}
    assert (directory / "execution_id.txt").read_text() == RUN


# -- references made before signing ---------------------------------------------------------


def test_unsigned_references_resolve_only_with_the_transition_switch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_BLOB_STORE", str(tmp_path / "blobs"))
    store = BlobStore.from_env()
    assert not store.accept_unsigned
    signed = stored(store, RUN, "old")
    legacy = {key: value for key, value in signed.items() if key != SIGNATURE_KEY}
    assert store.resolve({"x": legacy}, within=RUN) == {"x": legacy}

    monkeypatch.setenv("ORCHESTRATOR_BLOB_UNSIGNED_REFS", "accept")
    store = BlobStore.from_env()
    assert store.accept_unsigned
    with capture_logs() as logs:
        assert store.resolve({"x": legacy}, within=RUN) == {"x": "old"}
    assert logs[0]["event"].startswith("resolving an unsigned blob reference")
    assert store.get(legacy) == "old"
    # Still only of the node's own tree, and every part still checked.
    assert store.resolve({"x": legacy}, within="wf/run-other") == {"x": legacy}
    dotdot = {**legacy, "execution_id": ".."}
    assert store.resolve({"x": dotdot}, within="..") == {"x": dotdot}
    # A signature that does not verify is refused even so.
    wrong = {**signed, "bytes": signed["bytes"] + 1}
    assert store.resolve({"x": wrong}, within=RUN) == {"x": wrong}

    monkeypatch.setenv("ORCHESTRATOR_BLOB_UNSIGNED_REFS", "yes please")
    with pytest.raises(BlobStoreError, match="ORCHESTRATOR_BLOB_UNSIGNED_REFS is 'yes please'"):
        BlobStore.from_env()


# -- the key ----------------------------------------------------------------------------------


def test_a_local_store_makes_its_key_once_with_mode_0600(store: LocalBlobStore) -> None:
    key = store.key
    path = store.root / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert BlobKey.parse(path.read_text(), "test").key_id == key.key_id
    # Another process on the same store (another worker) reads the same key.
    again = LocalBlobStore(store.root)
    ref = stored(store, RUN, "value")
    assert again.get(ref) == "value"
    # The key file is no execution's blobs: gc neither lists nor removes it.
    assert [owner for owner, _, _ in store.executions()] == [RUN]
    with pytest.raises(ValueError, match="not the directory"):
        store.remove(KEY_FILE_NAME)
    assert sorted(p.name for p in store.root.iterdir()) == [
        KEY_FILE_NAME,
        "wf_run-0123456789abcdef",
    ]


def test_concurrent_first_uses_all_get_the_one_key_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / KEY_FILE_NAME
    start = threading.Barrier(8)

    def load() -> str:
        start.wait()
        return BlobKey.load_or_create(path).key_id

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(lambda _: load(), range(8)))
    assert set(ids) == {BlobKey.parse(path.read_text(), "test").key_id}
    assert [p.name for p in path.parent.iterdir()] == [KEY_FILE_NAME]  # no temporary left


def test_the_key_comes_from_the_environment(
    store: LocalBlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = BlobKey.generate()
    monkeypatch.setenv("ORCHESTRATOR_BLOB_STORE", str(store.root))
    monkeypatch.setenv("ORCHESTRATOR_BLOB_KEY", key.encoded())
    assert BlobStore.from_env().key.key_id == key.key_id
    urlsafe = key.encoded().replace("+", "-").replace("/", "_").rstrip("=")
    monkeypatch.setenv("ORCHESTRATOR_BLOB_KEY", urlsafe)
    assert BlobStore.from_env().key.key_id == key.key_id
    assert not (store.root / KEY_FILE_NAME).exists()  # a configured key makes no file

    monkeypatch.delenv("ORCHESTRATOR_BLOB_KEY")
    key_file = tmp_path / "blob.key"
    key_file.write_text(f"{key.encoded()}\n")
    monkeypatch.setenv("ORCHESTRATOR_BLOB_KEY_FILE", str(key_file))
    assert BlobStore.from_env().key.key_id == key.key_id


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ORCHESTRATOR_BLOB_KEY", "not base64!", "ORCHESTRATOR_BLOB_KEY is not a base64"),
        ("ORCHESTRATOR_BLOB_KEY", base64.b64encode(b"k" * 16).decode(), "holds 16 bytes"),
        ("ORCHESTRATOR_BLOB_KEY_FILE", "no/such/blob.key", "cannot be read"),
    ],
)
def test_a_bad_key_is_a_clear_error_that_never_shows_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(BlobStoreError, match=message) as caught:
        BlobStore.from_location(str(tmp_path / "blobs"))
    if variable == "ORCHESTRATOR_BLOB_KEY":
        assert value not in str(caught.value)


def test_both_key_variables_are_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ORCHESTRATOR_BLOB_KEY", BlobKey.generate().encoded())
    monkeypatch.setenv("ORCHESTRATOR_BLOB_KEY_FILE", str(tmp_path / "blob.key"))
    with pytest.raises(BlobStoreError, match="not both"):
        BlobStore.from_location(str(tmp_path / "blobs"))


def test_an_s3_store_needs_a_configured_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ORCHESTRATOR_BLOB_KEY", "ORCHESTRATOR_BLOB_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(BlobStoreError, match="s3://bucket/runs needs ORCHESTRATOR_BLOB_KEY"):
        BlobStore.from_location("s3://bucket/runs")
    # Made directly without one, it signs nothing and uploads nothing.
    store = S3BlobStore("bucket", "runs", endpoint_url="http://127.0.0.1:1")
    with pytest.raises(BlobStoreError, match="no key to sign references"):
        store.offload(RUN, {"big": "x" * 5000}, threshold=1000, limit=2_000_000)


def test_the_public_api_reports_a_wrong_setting_as_invalid_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from engine import PluginError, PluginErrorCode

    for name in ("ORCHESTRATOR_BLOB_KEY", "ORCHESTRATOR_BLOB_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ORCHESTRATOR_BLOB_STORE", "s3://bucket/runs")
    with pytest.raises(PluginError) as caught:
        BlobStore.configured()
    assert caught.value.code is PluginErrorCode.InvalidConfiguration
    assert "needs ORCHESTRATOR_BLOB_KEY" in caught.value.message
    assert isinstance(caught.value.__cause__, BlobStoreError)
