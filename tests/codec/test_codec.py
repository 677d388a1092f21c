"""Payload encryption: unit tests of the codec and the codec server, and real encrypted runs on the dev server."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import History
from temporalio.client import Client
from temporalio.converter import StorageDriverStoreContext, StorageDriverWorkflowInfo, WorkflowSerializationContext
from temporalio.testing import WorkflowEnvironment

from activities.config import WorkerSettings
from api.auth import ApiKeyRegistry
from api.codec.main import CodecConfigError, create_app
from api.codec.settings import CodecSettings
from orchestrator.codec import (
    ENCODING,
    KEY_ID_METADATA,
    TENANT_METADATA,
    DecryptionError,
    EncryptionCodec,
    EncryptionConfigError,
    encrypting_for,
    parse_keys,
)
from orchestrator.payload_store import REFERENCE_TYPE, STORE_ENV
from orchestrator.temporal import data_converter
from testbed.server import ThreadedServer
from tests.gateway.support import ALICE, BOB, QUICK_TASK, asgi_client, make_app
from tests.support import ALICE_KEY, BOB_KEY, SECRETS, binary, product_worker, secrets_in_histories
from workflows.coding_task import CodingTask
from workflows.models import CodingTaskInput, TaskState, TaskStatus

CODEC_API_KEY = "codec-tenant-key-0123456789abcdef"  # the operator's (tenant `default`)
SDK_MARKER_DETAILS = re.compile(r"marker_recorded_event_attributes\.details\[(patch-data|data)\]")


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


K1, K2 = new_key(), new_key()


def payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text.encode())


# --------------------------------------------------------------------------- codec


async def test_roundtrip_hides_data_and_encoding() -> None:
    codec = EncryptionCodec(parse_keys(f"k1={K1}"))
    [sealed] = await codec.encode([payload('"hello secret"')])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID_METADATA] == b"k1"
    assert b"hello secret" not in sealed.SerializeToString()
    assert b"json/plain" not in sealed.SerializeToString()
    [plain] = await codec.decode([sealed])
    assert plain == payload('"hello secret"')


async def test_nonce_is_fresh_per_payload() -> None:
    codec = EncryptionCodec(parse_keys(f"k1={K1}"))
    first, second = await codec.encode([payload("1"), payload("1")])
    assert first.data != second.data


async def test_rotation_old_key_still_decrypts_new_key_encrypts() -> None:
    old = EncryptionCodec(parse_keys(f"k1={K1}"))
    rotated = EncryptionCodec(parse_keys(f"k2={K2},k1={K1}"))
    [by_old] = await old.encode([payload("old")])
    [by_new] = await rotated.encode([payload("new")])
    assert by_new.metadata[KEY_ID_METADATA] == b"k2"
    assert (await rotated.decode([by_old]))[0].data == b"old"
    with pytest.raises(DecryptionError, match="k2"):
        await old.decode([by_new])


async def test_tampering_and_relabelling_fail_authentication() -> None:
    codec = EncryptionCodec(parse_keys(f"k2={K2},k1={K1}"))
    [sealed] = await codec.encode([payload("x")])
    tampered = Payload()
    tampered.CopyFrom(sealed)
    tampered.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(DecryptionError):
        await codec.decode([tampered])
    relabelled = Payload()
    relabelled.CopyFrom(sealed)
    relabelled.metadata[KEY_ID_METADATA] = b"k1"
    with pytest.raises(DecryptionError):
        await codec.decode([relabelled])


async def test_plain_payloads_pass_through_decode() -> None:
    codec = EncryptionCodec(parse_keys(f"k1={K1}"))
    assert await codec.decode([payload("plain")]) == [payload("plain")]


async def test_a_tenant_payload_needs_that_tenants_key() -> None:
    """Each tenant has its own data key (derived from the key and the tenant): a payload relabelled to another
    tenant, or to none, fails authentication."""
    codec = EncryptionCodec(parse_keys(f"k1={K1}"))
    with encrypting_for("alice"):
        [sealed] = await codec.encode([payload('"alice secret"')])
    assert sealed.metadata[TENANT_METADATA] == b"alice"
    assert codec.decrypt(sealed) == payload('"alice secret"')
    for label in (b"bob", None):
        relabelled = Payload()
        relabelled.CopyFrom(sealed)
        if label is None:
            del relabelled.metadata[TENANT_METADATA]
        else:
            relabelled.metadata[TENANT_METADATA] = label
        with pytest.raises(DecryptionError):
            codec.decrypt(relabelled)


async def test_a_workflows_payloads_are_encrypted_for_the_tenant_its_input_was() -> None:
    """What a worker does: it decodes a task's input (encrypted for alice by the gateway) in that workflow's
    context, and encrypts what it sends for that workflow (commands, results) for alice too; a workflow whose
    payloads name no tenant (started by the CLI) gets payloads for no tenant."""
    gateway, worker = EncryptionCodec(parse_keys(f"k1={K1}")), EncryptionCodec(parse_keys(f"k1={K1}"))
    ctx = WorkflowSerializationContext(namespace="default", workflow_id="task-a")
    with encrypting_for("alice"):
        [task_input] = await gateway.with_context(ctx).encode([payload('"input"')])
    await worker.with_context(ctx).decode([task_input])
    [result] = await worker.with_context(ctx).encode([payload('"result"')])
    assert result.metadata[TENANT_METADATA] == b"alice"
    other = WorkflowSerializationContext(namespace="default", workflow_id="task-cli")
    [cli_input] = await EncryptionCodec(parse_keys(f"k1={K1}")).encode([payload('"cli"')])
    await worker.with_context(other).decode([cli_input])
    [cli_result] = await worker.with_context(other).encode([payload('"r"')])
    assert TENANT_METADATA not in cli_result.metadata
    assert (await worker.decode([result, cli_result])) == [payload('"result"'), payload('"r"')]
    await worker.with_context(ctx).decode([payload('"a plain signal, e.g. from the CLI"')])
    [after_plain] = await worker.with_context(ctx).encode([payload('"r"')])
    assert TENANT_METADATA not in after_plain.metadata  # nobody's now (the operator's), never a guess


@pytest.mark.parametrize(
    "text",
    ["k1", "k1=", "=abc", f"k1={K1},k1={K2}", "k1=not-base64!", f"k1={base64.b64encode(b'short').decode()}", "a b=x"],
)
def test_bad_key_config_is_refused(text: str) -> None:
    with pytest.raises(EncryptionConfigError):
        parse_keys(text)


def test_encryption_is_off_without_keys() -> None:
    assert EncryptionCodec.from_env({}) is None
    assert EncryptionCodec.from_env({"PAYLOAD_ENCRYPTION_KEYS": " "}) is None
    assert data_converter({}).payload_codec is None
    assert isinstance(data_converter({"PAYLOAD_ENCRYPTION_KEYS": f"k1={K1}"}).payload_codec, EncryptionCodec)


# --------------------------------------------------------------------------- codec server


def codec_app(keys: str) -> Any:
    registry = ApiKeyRegistry({"default": CODEC_API_KEY, "alice": ALICE_KEY, "bob": BOB_KEY})
    return create_app(CodecSettings(), registry, EncryptionCodec(parse_keys(keys)))


def codec_http(keys: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=codec_app(keys)), base_url="http://codec")


def as_json(payloads: list[Payload]) -> dict[str, Any]:
    return {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                "data": base64.b64encode(p.data).decode(),
            }
            for p in payloads
        ]
    }


@pytest.mark.parametrize("path", ["/decode", "/default/decode"])
@pytest.mark.parametrize("auth", [{"X-API-KEY": CODEC_API_KEY}, {"Authorization": f"Bearer {CODEC_API_KEY}"}])
async def test_codec_server_encode_then_decode(path: str, auth: dict[str, str]) -> None:
    async with codec_http(f"k1={K1}") as http:
        encoded = await http.post(path.replace("decode", "encode"), json=as_json([payload('"hi"')]), headers=auth)
        assert encoded.status_code == 200, encoded.text
        [sealed] = encoded.json()["payloads"]
        assert base64.b64decode(sealed["metadata"]["encoding"]) == ENCODING
        decoded = await http.post(path, json=encoded.json(), headers=auth)
        assert decoded.status_code == 200, decoded.text
        [plain] = decoded.json()["payloads"]
        assert base64.b64decode(plain["data"]) == b'"hi"'
        assert base64.b64decode(plain["metadata"]["encoding"]) == b"json/plain"


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-KEY": "wrong-key-0123456789abcdef"}, {"Authorization": "Basic " + CODEC_API_KEY}],
)
async def test_codec_server_needs_the_api_key(headers: dict[str, str]) -> None:
    async with codec_http(f"k1={K1}") as http:
        response = await http.post("/decode", json=as_json([payload("1")]), headers=headers)
        assert response.status_code == 401


WEB_UI_HEADERS = {"X-Namespace": "default", "Origin": "http://localhost:8233"}  # what the Web UI sends with a batch


async def test_codec_server_decodes_only_the_callers_payloads() -> None:
    """A Web UI-style batch of everyone's payloads: each caller gets as many back, its own in plain, the others as
    they were sent; payloads encrypted for no tenant (tasks started by the CLI, or before tenants) are the
    operator's."""
    codec = EncryptionCodec(parse_keys(f"k1={K1}"))
    batch = [
        codec.encrypt(payload('"alice 1"'), "alice"),
        codec.encrypt(payload('"bob 1"'), "bob"),
        codec.encrypt(payload('"no tenant"')),
        payload('"plain"'),
        codec.encrypt(payload('"alice 2"'), "alice"),
    ]
    callers = {"alice": ALICE_KEY, "bob": BOB_KEY, "default": CODEC_API_KEY}
    readable = {"alice": {0, 4, 3}, "bob": {1, 3}, "default": {2, 3}}
    async with codec_http(f"k1={K1}") as http:
        for tenant, key in callers.items():
            auth = {**WEB_UI_HEADERS, "Authorization": f"Bearer {key}"}
            response = await http.post("/default/decode", json=as_json(batch), headers=auth)
            assert response.status_code == 200, response.text
            got = response.json()["payloads"]
            assert len(got) == len(batch)
            for i, (sent, back) in enumerate(zip(as_json(batch)["payloads"], got, strict=True)):
                if i in readable[tenant]:
                    assert base64.b64decode(back["metadata"]["encoding"]) == b"json/plain", (tenant, i)
                else:
                    assert back == sent, (tenant, i)  # left encoded, byte for byte


async def test_codec_server_encodes_for_the_caller() -> None:
    async with codec_http(f"k1={K1}") as http:
        encoded = await http.post("/encode", json=as_json([payload('"mine"')]), headers=ALICE)
        assert encoded.status_code == 200
        assert base64.b64decode(encoded.json()["payloads"][0]["metadata"][TENANT_METADATA]) == b"alice"
        by_bob = await http.post("/decode", json=encoded.json(), headers=BOB)
        assert by_bob.json() == encoded.json()
        by_alice = await http.post("/decode", json=encoded.json(), headers=ALICE)
        assert base64.b64decode(by_alice.json()["payloads"][0]["data"]) == b'"mine"'


async def test_codec_server_cors_for_the_ui_origin() -> None:
    async with codec_http(f"k1={K1}") as http:
        preflight = await http.options(
            "/default/decode",
            headers={
                "Origin": "http://localhost:8233",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://localhost:8233"
        other = await http.options(
            "/decode", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert other.headers.get("access-control-allow-origin") != "http://evil.example"


async def test_codec_server_rejects_garbage_and_unknown_keys() -> None:
    async with codec_http(f"k1={K1}") as http:
        auth = {"X-API-KEY": CODEC_API_KEY}
        garbage = await http.post("/decode", json={"payloads": "nope"}, headers=auth)
        assert garbage.status_code == 422
        assert [e["field"] for e in garbage.json()["errors"]] == ["body.payloads"]
        not_base64 = await http.post("/decode", json={"payloads": [{"data": "%%%"}]}, headers=auth)
        assert not_base64.status_code == 422
        assert [e["field"] for e in not_base64.json()["errors"]] == ["body.payloads.0.data"]
        foreign = EncryptionCodec(parse_keys(f"k9={K2}")).encrypt(payload("1"), "default")
        response = await http.post("/decode", json=as_json([foreign]), headers=auth)
        assert response.status_code == 422
        assert "k9" in response.json()["detail"]


def test_codec_server_refuses_to_start_without_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAYLOAD_ENCRYPTION_KEYS", raising=False)
    with pytest.raises(CodecConfigError):
        create_app(CodecSettings(), ApiKeyRegistry({"ops": CODEC_API_KEY}))


# --------------------------------------------------------------------------- real runs on the dev server


def iter_payloads(message: Message, path: str = "") -> Iterator[tuple[str, Payload]]:
    """Every Payload inside a protobuf message, with the field path that leads to it."""
    if isinstance(message, Payload):
        yield path, message
        return
    for field, value in message.ListFields():
        name = f"{path}.{field.name}"
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            if value_field.message_type is not None:
                for key, item in value.items():
                    yield from iter_payloads(item, f"{name}[{key}]")
        elif not isinstance(value, Message):  # a repeated field
            for index, item in enumerate(value):
                yield from iter_payloads(item, f"{name}[{index}]")
        else:
            yield from iter_payloads(value, name)


async def encrypted_client(env: WorkflowEnvironment, keys: str) -> Client:
    config = env.client.service_client.config
    return await Client.connect(
        config.target_host,
        namespace=env.client.namespace,
        data_converter=data_converter({"PAYLOAD_ENCRYPTION_KEYS": keys}),
    )


async def run_task(client: Client, task_queue: str, description: str) -> tuple[str, TaskState]:
    workflow_id = f"enc-{uuid.uuid4().hex[:12]}"
    result = await client.execute_workflow(
        CodingTask.run,
        CodingTaskInput(task_description=description, feedback_window_seconds=0),
        id=workflow_id,
        task_queue=task_queue,
    )
    return workflow_id, result


async def raw_history(env: WorkflowEnvironment, workflow_id: str) -> History:
    """The history as the server stores it, fetched by a client that has no codec."""
    plain_client = env.client
    assert plain_client.data_converter.payload_codec is None
    fetched = await plain_client.get_workflow_handle(workflow_id).fetch_history()
    return History(events=fetched.events)


async def test_encrypted_run_history_is_ciphertext_and_decodes_through_the_codec_server(
    temporal_env: WorkflowEnvironment, worker_settings: WorkerSettings, task_queue: str
) -> None:
    keys = f"k1={K1}"
    client = await encrypted_client(temporal_env, keys)
    description = f"write an add function, marker {uuid.uuid4().hex}"
    async with product_worker(client, worker_settings):
        workflow_id, result = await run_task(client, task_queue, description)
        # the encrypted client reads the state as usual
        handle = client.get_workflow_handle_for(CodingTask.run, workflow_id)
        assert (await handle.query(CodingTask.status)).task_description == description
    assert result.task_status == TaskStatus.COMPLETED
    assert result.results.code_generation is not None

    history = await raw_history(temporal_env, workflow_id)
    raw = history.SerializeToString()
    assert description.encode() not in raw
    assert b"def add" not in raw
    for secret in SECRETS:
        assert secret.encode() not in raw
    payloads = [(p, pl) for p, pl in iter_payloads(history) if ".search_attributes" not in p]
    assert len(payloads) > 10
    # SDK-internal marker details (a patch id; a local activity's id, type and timing) bypass the codec by design
    internal = [(p, pl) for p, pl in payloads if SDK_MARKER_DETAILS.search(p)]
    payloads = [(p, pl) for p, pl in payloads if not SDK_MARKER_DETAILS.search(p)]
    not_encrypted = [p for p, pl in payloads if pl.metadata.get("encoding") != ENCODING]
    assert not not_encrypted, not_encrypted
    assert {pl.metadata[KEY_ID_METADATA] for _, pl in payloads} == {b"k1"}
    assert all(len(pl.data) < 300 and b"marker" not in pl.data for _, pl in internal)

    # the codec server (what the Web UI and `temporal --codec-endpoint` call) turns them back into JSON
    async with codec_http(keys) as http:
        response = await http.post(
            "/default/decode",
            json=as_json([pl for _, pl in payloads]),
            headers={"Authorization": f"Bearer {CODEC_API_KEY}"},
        )
    assert response.status_code == 200, response.text
    plain = [base64.b64decode(p.get("data", "")) for p in response.json()["payloads"]]
    everything = b"\n".join(plain)
    assert description.encode() in everything
    assert b"def add" in everything
    for secret in SECRETS:  # not even in the decrypted history
        assert secret.encode() not in everything


async def test_a_task_started_by_alice_decodes_for_alice_only(
    temporal_env: WorkflowEnvironment, worker_settings: WorkerSettings, task_queue: str
) -> None:
    """Through the gateway, every payload of alice's task (her input, the worker's commands, activity inputs and
    results, the final state) is encrypted for alice: the Web UI's batch of the whole history decodes for her, and
    for bob (or the operator) comes back exactly as sent."""
    keys = f"k1={K1}"
    description = f"write an add function, alice marker {uuid.uuid4().hex}"
    gateway_client, worker_client = (
        await encrypted_client(temporal_env, keys),
        await encrypted_client(temporal_env, keys),
    )
    async with (
        product_worker(worker_client, worker_settings),
        asgi_client(make_app(task_queue, gateway_client)) as http,
    ):
        started = await http.post(
            "/invoke?stream=false", json={**QUICK_TASK, "task_description": description}, headers=ALICE
        )
        assert started.status_code == 202, started.text
        workflow_id = started.json()["session_id"]
        state = await gateway_client.get_workflow_handle_for(CodingTask.run, workflow_id).result()
    assert state.task_status == TaskStatus.COMPLETED

    history = await raw_history(temporal_env, workflow_id)
    payloads = [
        pl for p, pl in iter_payloads(history) if ".search_attributes" not in p and not SDK_MARKER_DETAILS.search(p)
    ]
    assert len(payloads) > 10
    assert {pl.metadata.get(TENANT_METADATA) for pl in payloads} == {b"alice"}
    batch = as_json(payloads)
    async with codec_http(keys) as http:
        for other in (BOB, {"X-API-KEY": CODEC_API_KEY}):
            refused = await http.post("/default/decode", json=batch, headers={**WEB_UI_HEADERS, **other})
            assert refused.status_code == 200 and refused.json() == batch
        decoded = await http.post("/default/decode", json=batch, headers={**WEB_UI_HEADERS, **ALICE})
    assert decoded.status_code == 200
    plain = b"\n".join(base64.b64decode(p.get("data", "")) for p in decoded.json()["payloads"])
    assert description.encode() in plain and b"def add" in plain


async def test_key_rotation_on_the_dev_server(
    temporal_env: WorkflowEnvironment, worker_settings: WorkerSettings, task_queue: str
) -> None:
    old_client = await encrypted_client(temporal_env, f"k1={K1}")
    async with product_worker(old_client, worker_settings):
        old_id, _ = await run_task(old_client, task_queue, "old task under k1")

    rotated = await encrypted_client(temporal_env, f"k2={K2},k1={K1}")
    async with product_worker(rotated, worker_settings):
        new_id, result = await run_task(rotated, task_queue, "new task under k2")
    assert result.task_status == TaskStatus.COMPLETED
    new_history = await raw_history(temporal_env, new_id)
    key_ids = {
        pl.metadata.get(KEY_ID_METADATA)
        for p, pl in iter_payloads(new_history)
        if "search_attr" not in p and not SDK_MARKER_DETAILS.search(p)
    }
    assert key_ids == {b"k2"}
    # the rotated client still reads what the old key wrote
    old_state = await rotated.get_workflow_handle_for(CodingTask.run, old_id).result()
    assert old_state.task_description == "old task under k1"


async def test_the_session_wide_secret_scan_finds_a_planted_secret(
    temporal_env: WorkflowEnvironment, task_queue: str
) -> None:
    """The scan `secret_scan` runs over every history at the end of the session can fail: a value in a plain
    history is found, an encrypted one is not (there the codec is what keeps it hidden)."""
    plain, sealed = f"planted-{uuid.uuid4().hex}", f"planted-{uuid.uuid4().hex}"
    client = temporal_env.client
    encrypted = await encrypted_client(temporal_env, f"k1={K1}")
    ids = []
    for starter, marker in ((client, plain), (encrypted, sealed)):
        handle = await starter.start_workflow(
            CodingTask.run, CodingTaskInput(task_description=marker), id=f"scan-{uuid.uuid4().hex}",
            task_queue=task_queue,
        )  # fmt: skip
        ids.append((handle.id, handle.result_run_id))
        await handle.terminate("planted")
    for _ in range(50):  # visibility lists a new workflow within moments
        count, found = await secrets_in_histories(client, [plain, sealed])
        if found:
            break
        await asyncio.sleep(0.1)
    assert count >= 2
    assert found == [f"{plain!r} in {ids[0][0]} ({ids[0][1]})"]


async def test_temporal_cli_shows_plaintext_through_the_codec_server(
    temporal_env: WorkflowEnvironment, worker_settings: WorkerSettings, task_queue: str
) -> None:
    """The real `temporal --codec-endpoint --codec-auth` against the codec server: what the Web UI does too."""
    keys = f"k1={K1}"
    client = await encrypted_client(temporal_env, keys)
    description = f"cli codec marker {uuid.uuid4().hex}"
    async with product_worker(client, worker_settings):
        workflow_id, _ = await run_task(client, task_queue, description)
    server = ThreadedServer(codec_app(keys)).start()
    try:
        base = [binary("temporal"), "workflow", "show", "--workflow-id", workflow_id, "-o", "json"]
        base += ["--address", temporal_env.client.service_client.config.target_host]
        plain = await asyncio.to_thread(subprocess.run, base, capture_output=True, text=True, timeout=60)
        assert plain.returncode == 0, plain.stderr
        assert "encryption-key-id" in plain.stdout
        assert description not in plain.stdout and description not in started_input(plain.stdout)

        decoded = await asyncio.to_thread(
            subprocess.run,
            [*base, "--codec-endpoint", server.base_url, "--codec-auth", f"Bearer {CODEC_API_KEY}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert decoded.returncode == 0, decoded.stderr
        assert description in started_input(decoded.stdout)

        refused = await asyncio.to_thread(
            subprocess.run,
            [*base, "--codec-endpoint", server.base_url, "--codec-auth", "Bearer wrong-key-0123456789abcdef"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert description not in refused.stdout and description not in started_input(refused.stdout)
    finally:
        server.stop()


def started_input(shown: str) -> str:
    """The workflow input as `temporal workflow show -o json` prints it (payload data is base64), decoded."""
    try:
        events = json.loads(shown)["events"]
    except (ValueError, KeyError):
        return ""
    payload = events[0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0]
    return base64.b64decode(payload.get("data", "")).decode("utf-8", "replace")


@pytest.mark.parametrize("backend", ["sqlite", "s3"])
async def test_codec_server_shows_values_kept_in_the_payload_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, backend: str
) -> None:
    """The Web UI sees a storage reference in history; /decode answers with the stored value, decrypted (from the
    SQLite file, or from a bucket of a real S3-compatible server)."""
    location = request.getfixturevalue("s3_store_env") if backend == "s3" else {STORE_ENV: str(tmp_path / "p.sqlite")}
    store = {**location, "PAYLOAD_ENCRYPTION_KEYS": f"k1={K1}"}
    converter = data_converter(store)._with_store_context(
        StorageDriverStoreContext(target=StorageDriverWorkflowInfo(namespace="default", id="task-ui"))
    )
    big = "x = 1\n" * 10_000
    [reference] = await converter.encode([big])
    assert reference.metadata["messageType"] == REFERENCE_TYPE
    for name, value in location.items():
        monkeypatch.setenv(name, value)
    async with codec_http(f"k1={K1}") as http:
        decoded = await http.post("/decode", json=as_json([reference]), headers={"X-API-KEY": CODEC_API_KEY})
    assert decoded.status_code == 200, decoded.text
    [plain] = decoded.json()["payloads"]
    assert json.loads(base64.b64decode(plain["data"])) == big
    with encrypting_for("alice"):  # a value of alice's task: shown to her, to bob as the reference it is
        [alices] = await converter.encode(["alice's " + big])
    async with codec_http(f"k1={K1}") as http:
        by_bob = await http.post("/decode", json=as_json([alices]), headers=BOB)
        by_alice = await http.post("/decode", json=as_json([alices]), headers=ALICE)
    assert by_bob.json() == as_json([alices])
    assert json.loads(base64.b64decode(by_alice.json()["payloads"][0]["data"])) == "alice's " + big
    elsewhere = store[STORE_ENV] + "-elsewhere" if backend == "s3" else str(tmp_path / "elsewhere.sqlite")
    monkeypatch.setenv(STORE_ENV, elsewhere)  # a store without the value: a clear 422
    async with codec_http(f"k1={K1}") as http:
        missing = await http.post("/decode", json=as_json([reference]), headers={"X-API-KEY": CODEC_API_KEY})
    assert missing.status_code == 422 and "task 'task-ui'" in missing.text and "missing" in missing.text


async def test_a_gateway_without_the_keys_lists_an_encrypted_task_as_nobodys(
    temporal_env: WorkflowEnvironment, client: Client, task_queue: str
) -> None:
    """A gateway whose PAYLOAD_ENCRYPTION_KEYS are not the worker's cannot read a task's memo: the task is nobody's
    there (not listed, 404), never a 500 that breaks the caller's whole listing."""
    async with asgi_client(make_app(task_queue, await encrypted_client(temporal_env, f"k1={K1}"))) as http:
        started = await http.post("/invoke?stream=false", json=QUICK_TASK, headers=ALICE)  # no worker: it stays put
        assert started.status_code == 202, started.text
    session_id = started.json()["session_id"]
    async with asgi_client(make_app(task_queue, client)) as http:
        listed = await http.get("/tasks", headers=ALICE)
        assert listed.status_code == 200, listed.text
        assert session_id not in {task["session_id"] for task in listed.json()["tasks"]}
        assert (await http.get(f"/status/{session_id}", headers=ALICE)).status_code == 404
    await client.get_workflow_handle(session_id).terminate("test over")
