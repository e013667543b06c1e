"""The blob store's offload/resolve rules, on the local store; choosing a store from the
environment. The S3 store against a real S3 API: tests/integration/test_blob_store_s3.py."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from engine.temporal.blobs import (
    DEFAULT_THRESHOLD,
    REF_KEY,
    SIGNATURE_KEY,
    BlobKey,
    BlobStore,
    BlobStoreError,
    LocalBlobStore,
    S3BlobStore,
    blob_threshold,
    contains_refs,
    is_ref,
)

LIMIT = 2_000_000


@pytest.fixture(name="store")
def fixture_store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def test_an_output_under_the_threshold_is_left_as_it_is(store: LocalBlobStore) -> None:
    output = {"text": "x" * 900, "n": 1}
    assert store.offload("run-1", output, threshold=1000, limit=LIMIT) is output
    assert store.executions() == []


def test_large_values_become_references_and_small_ones_stay_inline(
    store: LocalBlobStore,
) -> None:
    rows = [{"id": i, "name": f"row {i}"} for i in range(2000)]
    output = {"rows": rows, "text": "y" * 5000, "row_count": 2000, "label": "small"}
    offloaded = store.offload("run-1", output, threshold=1000, limit=LIMIT)

    assert offloaded["row_count"] == 2000
    assert offloaded["label"] == "small"
    encoded = json.dumps(rows, separators=(",", ":")).encode()
    ref = offloaded["rows"]
    assert is_ref(ref)
    digest = f"sha256:{hashlib.sha256(encoded).hexdigest()}"
    assert ref == {
        REF_KEY: digest,
        "bytes": len(encoded),
        "execution_id": "run-1",
        "preview": encoded[:120].decode(),
        SIGNATURE_KEY: store.key.sign("run-1", digest, len(encoded)),
    }
    assert is_ref(offloaded["text"])
    assert offloaded["text"]["preview"] == '"' + "y" * 119
    assert len(json.dumps(offloaded)) <= 1000
    assert store.resolve(offloaded, within="run-1") == output


def test_only_the_largest_values_go_until_the_output_fits(store: LocalBlobStore) -> None:
    output = {"big": "a" * 20_000, "medium": "b" * 3000}
    offloaded = store.offload("run-1", output, threshold=10_000, limit=LIMIT)
    assert is_ref(offloaded["big"])
    assert offloaded["medium"] == "b" * 3000


def test_values_of_a_few_hundred_bytes_always_stay_inline(store: LocalBlobStore) -> None:
    output = {f"k{i}": "z" * 400 for i in range(10)}  # about 4 KB, all keys small
    offloaded = store.offload("run-1", output, threshold=1000, limit=LIMIT)
    assert offloaded == output
    assert store.executions() == []


def test_an_output_still_over_the_limit_is_an_error(store: LocalBlobStore) -> None:
    output = {f"k{i}": "z" * 400 for i in range(10)}
    with pytest.raises(ValueError, match="too many keys"):
        store.offload("run-1", output, threshold=1000, limit=3000)


def test_references_are_resolved_a_few_levels_deep(store: LocalBlobStore) -> None:
    ref = store.offload("run-1", {"v": "q" * 2000}, threshold=100, limit=LIMIT)["v"]
    value = {"a": [{"b": {"c": ref}}], "plain": 1, "other": ref}
    assert store.resolve(value, within="run-1") == {
        "a": [{"b": {"c": "q" * 2000}}],
        "plain": 1,
        "other": "q" * 2000,
    }
    assert store.resolve(ref, within="run-1") == "q" * 2000
    # Past four containers, values are left as they are.
    deep = {"1": {"2": {"3": {"4": {"5": ref}}}}}
    assert store.resolve(deep, within="run-1") == deep
    assert not contains_refs(deep)
    four = {"1": {"2": {"3": {"4": ref}}}}
    assert contains_refs(four)
    assert store.resolve(four, within="run-1") == {"1": {"2": {"3": {"4": "q" * 2000}}}}


def test_put_is_content_addressed_and_idempotent(store: LocalBlobStore) -> None:
    data = b'"some data"'
    first = store.put("wf/run:1", data)
    assert first == f"sha256:{hashlib.sha256(data).hexdigest()}"
    assert store.put("wf/run:1", data) == first
    directory = store.root / "wf_run_1"
    assert sorted(path.name for path in directory.iterdir()) == [
        f"{first.removeprefix('sha256:')}.json",
        "execution_id.txt",
    ]
    assert (directory / "execution_id.txt").read_text() == "wf/run:1"
    assert store.get(store.make_ref("wf/run:1", first, len(data), "")) == "some data"


def test_a_missing_blob_is_file_not_found(store: LocalBlobStore) -> None:
    with pytest.raises(FileNotFoundError):
        store.get(store.make_ref("run-1", "sha256:" + "0" * 64, 1, ""))


def test_executions_and_remove(store: LocalBlobStore) -> None:
    assert store.executions() == []
    ref_a = store.put("run-a", b"1")
    store.put("run-a", b"2")
    store.put("wf/run:b", b"3")
    found = store.executions()
    assert [(owner, directory) for owner, directory, _ in found] == [
        ("run-a", "run-a"),
        ("wf/run:b", "wf_run_b"),
    ]
    assert all(modified > 0 for _, _, modified in found)

    store.remove("run-a")
    assert [owner for owner, _, _ in store.executions()] == ["wf/run:b"]
    with pytest.raises(FileNotFoundError):
        store.get(store.make_ref("run-a", ref_a, 1, ""))
    store.remove("run-a")  # already gone: nothing to do


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../x"])
def test_remove_never_reaches_outside_one_execution(store: LocalBlobStore, name: str) -> None:
    store.put("run-a", b"1")
    with pytest.raises(ValueError, match="not the directory"):
        store.remove(name)
    assert [owner for owner, _, _ in store.executions()] == ["run-a"]


def test_the_threshold_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_BLOB_THRESHOLD", "1234")
    assert blob_threshold() == 1234
    monkeypatch.setenv("ORCHESTRATOR_BLOB_THRESHOLD", "lots")
    assert blob_threshold() == DEFAULT_THRESHOLD


def test_a_path_or_file_url_is_a_local_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_BLOB_STORE", str(tmp_path / "here"))
    store = BlobStore.from_env()
    assert isinstance(store, LocalBlobStore)
    assert store.root == tmp_path / "here"
    assert store.location == str(tmp_path / "here")
    monkeypatch.setenv("ORCHESTRATOR_BLOB_STORE", f"file://{tmp_path}/there")
    store = BlobStore.from_env()
    assert isinstance(store, LocalBlobStore)
    assert store.root == tmp_path / "there"


def test_an_s3_url_is_an_s3_store(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ORCHESTRATOR_BLOB_KEY", BlobKey.generate().encoded())
    monkeypatch.setenv("ORCHESTRATOR_BLOB_STORE", "s3://my-bucket/some/prefix/")
    monkeypatch.setenv("ORCHESTRATOR_S3_ENDPOINT_URL", "http://minio.example:9000")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    store = BlobStore.from_env()  # no request is made until the store is used
    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.prefix) == ("my-bucket", "some/prefix")
    assert store.location == "s3://my-bucket/some/prefix"
    assert store.endpoint == "http://minio.example:9000"

    monkeypatch.delenv("ORCHESTRATOR_S3_ENDPOINT_URL")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://ceph.example:7480")
    store = BlobStore.from_location("s3://other-bucket")
    assert isinstance(store, S3BlobStore)
    assert (store.location, store.prefix, store.endpoint) == (
        "s3://other-bucket",
        "",
        "http://ceph.example:7480",
    )
    with pytest.raises(ValueError, match="not an S3 bucket"):
        BlobStore.from_location("s3:///prefix")


def test_an_s3_store_without_boto3_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_BLOB_KEY", BlobKey.generate().encoded())
    monkeypatch.setitem(sys.modules, "boto3", None)  # makes `import boto3` fail
    with pytest.raises(BlobStoreError, match=r"s3://my-bucket/p needs boto3.*\[s3\]"):
        BlobStore.from_location("s3://my-bucket/p")
