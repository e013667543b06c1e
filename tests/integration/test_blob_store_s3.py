"""The S3 blob store against a real S3 API server, and a workflow whose large output goes
through it.

No AWS account, MinIO or Ceph is reachable from the machines these tests run on, so the
S3-compatible endpoint here is moto's server (``python -m moto.server``): an implementation of
the S3 HTTP API, started as a subprocess on a free port and spoken to over HTTP by the same
boto3 client, with path-style requests, that a MinIO, Ceph or R2 endpoint gets. It is not one
of those stores: their own quirks (checksum headers, listing order under load) are not
exercised here. The Temporal side is the session's real dev server, as everywhere else.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from temporalio.client import Client

from engine import AdvancedPluginOrchestrator, WorkflowExecutionStatus
from engine.hosting.devserver import free_port, port_open
from engine.hosting.worker import create_worker
from engine.temporal.blobs import (
    REF_KEY,
    SIGNATURE_KEY,
    BlobIntegrityError,
    BlobKey,
    BlobReferenceError,
    BlobStore,
    BlobStoreError,
    S3BlobStore,
    is_ref,
)
from plugins import PluginRegistry
from tests.helpers.builders import edge, node, workflow

BUCKET = "orchestrator-blobs"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test-key",
    "AWS_SECRET_ACCESS_KEY": "test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextmanager
def moto_server(log_dir: Path, **env: str) -> Iterator[str]:
    """A moto S3 server on a free port; yields its endpoint URL."""
    port = free_port()
    log_path = log_dir / f"moto-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **CREDENTIALS, **env},
        )
        try:
            deadline = time.monotonic() + 30
            while not port_open("127.0.0.1", port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start:\n{log_path.read_text()}")
                time.sleep(0.1)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(name="endpoint", scope="module")
def fixture_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One S3 server for the module, with the test bucket."""
    with moto_server(tmp_path_factory.mktemp("moto")) as endpoint:
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        client.create_bucket(Bucket=BUCKET)
        yield endpoint


@pytest.fixture(name="s3_env")
def fixture_s3_env(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> str:
    """The standard AWS settings for the test server (restored after the test)."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ORCHESTRATOR_S3_ENDPOINT_URL", endpoint)
    # An S3 store needs the key that signs references (every machine shares it).
    monkeypatch.setenv("ORCHESTRATOR_BLOB_KEY", BlobKey.generate().encoded())
    return endpoint


@pytest.fixture(name="bucket")
def fixture_bucket(s3_env: str) -> Any:
    """A boto3 client of its own, to look into the bucket behind the store's back."""
    return boto3.session.Session().client("s3", endpoint_url=s3_env)


def keys(bucket: Any, prefix: str) -> list[str]:
    pages = bucket.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def count_requests(store: S3BlobStore, operation: str) -> Callable[[], int]:
    """How many ``operation`` requests the store's client makes from now on."""
    calls: list[str] = []
    store._client.meta.events.register(
        f"before-call.s3.{operation}", lambda **_: calls.append(operation)
    )
    return lambda: len(calls)


def test_put_get_executions_remove(s3_env: str, bucket: Any, unique: Callable[[str], str]) -> None:
    prefix = unique("direct")
    store = BlobStore.from_location(f"s3://{BUCKET}/{prefix}/")
    assert isinstance(store, S3BlobStore)
    assert store.location == f"s3://{BUCKET}/{prefix}"
    assert store.executions() == []

    uploads = count_requests(store, "PutObject")
    data = json.dumps({"rows": list(range(1000))}).encode()
    ref = store.put("wf/run:1", data)
    digest = hashlib.sha256(data).hexdigest()
    assert ref == f"sha256:{digest}"
    assert uploads() == 2  # the blob and its owner
    assert store.put("wf/run:1", data) == ref  # a retry: already there, not uploaded again
    assert uploads() == 2
    assert keys(bucket, f"{prefix}/") == [
        f"{prefix}/wf_run_1/{digest}.json",
        f"{prefix}/wf_run_1/execution_id.txt",
    ]
    owner = bucket.get_object(Bucket=BUCKET, Key=f"{prefix}/wf_run_1/execution_id.txt")
    assert owner["Body"].read() == b"wf/run:1"
    assert store.get(store.make_ref("wf/run:1", ref, len(data), "")) == {"rows": list(range(1000))}
    with pytest.raises(FileNotFoundError):
        store.get(store.make_ref("wf/run:1", "sha256:" + "0" * 64, 1, ""))

    before = time.time()
    store.put("run-2", b'"other"')
    found = store.executions()
    assert [(owner, directory) for owner, directory, _ in found] == [
        ("run-2", "run-2"),
        ("wf/run:1", "wf_run_1"),
    ]
    assert found[0][2] >= before - 2  # the newest LastModified (S3 keeps whole seconds)

    store.remove("wf_run_1")
    assert [owner for owner, _, _ in store.executions()] == ["run-2"]
    assert keys(bucket, f"{prefix}/wf_run_1/") == []
    with pytest.raises(FileNotFoundError):
        store.get(store.make_ref("wf/run:1", ref, len(data), ""))
    store.remove("wf_run_1")  # nothing left: nothing to do
    with pytest.raises(ValueError, match="not the directory"):
        store.remove("")  # never the whole prefix
    assert [owner for owner, _, _ in store.executions()] == ["run-2"]


def test_remove_deletes_more_than_one_batch(
    s3_env: str, bucket: Any, unique: Callable[[str], str]
) -> None:
    prefix = unique("many")
    store = S3BlobStore(BUCKET, prefix, endpoint_url=s3_env)
    store.put("run-many", b"0")

    def upload(index: int) -> None:
        bucket.put_object(Bucket=BUCKET, Key=f"{prefix}/run-many/{index}.json", Body=b"1")

    # 1,106 objects: two listing pages, two DeleteObjects calls.
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(upload, range(1, 1105)))
    assert len(keys(bucket, f"{prefix}/run-many/")) == 1106
    deletes = count_requests(store, "DeleteObjects")
    store.remove("run-many")
    assert deletes() == 2
    assert keys(bucket, f"{prefix}/") == []
    assert store.executions() == []


def test_offload_and_resolve_a_20_mb_value(s3_env: str, unique: Callable[[str], str]) -> None:
    store = S3BlobStore(BUCKET, unique("large"), endpoint_url=s3_env, key=BlobKey.generate())
    text = "0123456789" * 2_000_000
    output = {"payload": text, "count": 2}
    offloaded = store.offload("run-large", output, threshold=256 * 1024, limit=2_000_000)
    assert offloaded["count"] == 2
    ref = offloaded["payload"]
    assert is_ref(ref)
    assert ref["bytes"] == 20_000_002
    assert ref["preview"] == '"' + ("0123456789" * 12)[:119]
    assert store.resolve({"upstream": offloaded}, within="run-large") == {"upstream": output}


def test_forged_references_make_no_request_and_a_changed_blob_is_refused(
    s3_env: str, bucket: Any, unique: Callable[[str], str]
) -> None:
    prefix = unique("forged")
    store = BlobStore.from_location(f"s3://{BUCKET}/{prefix}")
    data = b'"value"'
    digest = store.put("wf/run-1", data)
    real = store.make_ref("wf/run-1", digest, len(data), "")
    bucket.put_object(Bucket=BUCKET, Key="outside.json", Body=b'"outside the prefix"')
    forged = [
        {**real, REF_KEY: "sha256:../../outside"},
        {**real, REF_KEY: "sha256:/outside"},
        {**real, "execution_id": ".."},
        {key: value for key, value in real.items() if key != SIGNATURE_KEY},
        {**real, "execution_id": "wf/run-2"},
    ]
    gets = count_requests(store, "GetObject")
    for ref in forged:
        with pytest.raises(BlobReferenceError):
            store.get(ref)
        assert store.resolve({"x": ref}, within="wf/run-1") == {"x": ref}
    assert gets() == 0
    assert store.get(real) == "value"
    assert gets() == 1

    key = f"{prefix}/wf_run-1/{digest.removeprefix('sha256:')}.json"
    bucket.put_object(Bucket=BUCKET, Key=key, Body=b'"VALUE"')
    with pytest.raises(BlobIntegrityError, match="does not match its digest"):
        store.get(real)


def test_a_missing_bucket_is_a_clear_error(s3_env: str) -> None:
    store = S3BlobStore("no-such-bucket", "runs", endpoint_url=s3_env, key=BlobKey.generate())
    expected = rf"bucket 'no-such-bucket' does not exist at {s3_env}"
    with pytest.raises(BlobStoreError, match=expected):
        store.put("run-1", b"1")
    with pytest.raises(BlobStoreError, match=expected):
        store.executions()
    with pytest.raises(BlobStoreError, match=expected):
        store.get(store.make_ref("run-1", "sha256:" + "0" * 64, 1, ""))


def test_rejected_credentials_are_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A second server that checks credentials (moto accepts any unless told otherwise);
    # it knows no access key, so ours is rejected as a real store rejects a wrong one.
    with moto_server(tmp_path, INITIAL_NO_AUTH_ACTION_COUNT="0") as endpoint:
        for name, value in CREDENTIALS.items():
            monkeypatch.setenv(name, value)
        store = S3BlobStore(BUCKET, "runs", endpoint_url=endpoint)
        with pytest.raises(BlobStoreError, match=rf"bucket '{BUCKET}' at {endpoint}") as caught:
            store.executions()
        assert "rejected the credentials (InvalidAccessKeyId)" in str(caught.value)
        with pytest.raises(BlobStoreError, match=rf"bucket '{BUCKET}' at {endpoint}"):
            store.put("run-1", b"1")


async def test_a_workflow_moves_a_5_mb_output_through_s3(
    monkeypatch: pytest.MonkeyPatch,
    s3_env: str,
    bucket: Any,
    client: Client,
    task_queue: str,
    registry: PluginRegistry,
    unique: Callable[[str], str],
) -> None:
    prefix = unique("runs")
    # Replaces the session's local store (tests/conftest.py) for this test only.
    monkeypatch.setenv("ORCHESTRATOR_BLOB_STORE", f"s3://{BUCKET}/{prefix}")
    orchestrator = AdvancedPluginOrchestrator(client, task_queue=task_queue, query_timeout=5.0)
    assert orchestrator.blobs.location == f"s3://{BUCKET}/{prefix}"
    worker = create_worker(
        client,
        task_queue=task_queue,
        plugins=registry,
        blob_store=BlobStore.from_env(),
        max_cached_workflows=0,
        graceful_shutdown=5.0,
    )
    size = 5_000_000
    definition = workflow(
        unique("big-s3"),
        [node("make", "big_output", size=size), node("check", "measure")],
        [edge("make", "check", target_port="made")],
    )
    async with worker:
        await orchestrator.register_workflow(definition)
        execution_id = await orchestrator.execute_workflow(definition.workflow_id)
        context = await orchestrator.wait_for_completion(execution_id, 120)
    assert context.status is WorkflowExecutionStatus.Completed, context.error_messages
    measured = context.execution_data["results"]["check"]["made.blob"]
    assert measured == {"length": size, "sha256": hashlib.sha256(b"x" * size).hexdigest()}

    ref = context.node_states["make"]["result"]["blob"]
    assert is_ref(ref)
    assert ref["bytes"] == size + 2
    digest = ref[REF_KEY].removeprefix("sha256:")
    [key] = [key for key in keys(bucket, f"{prefix}/") if key.endswith(f"/{digest}.json")]
    assert bucket.head_object(Bucket=BUCKET, Key=key)["ContentLength"] == size + 2
    owner_key = key.rsplit("/", 1)[0] + "/execution_id.txt"
    assert bucket.get_object(Bucket=BUCKET, Key=owner_key)["Body"].read() == execution_id.encode()
    assert await orchestrator.read_blob(ref) == "x" * size

    removed = await orchestrator.collect_blobs(older_than=0)
    assert removed == [execution_id]
    assert keys(bucket, f"{prefix}/") == []
