"""Every port `make run` is told to use reaches every process that connects to it: the worker and the gateway get
TEMPORAL_ADDRESS, MEMORY_API_URL and NATS_URL from TEMPORAL_PORT, MEMORY_API_PORT and NATS_PORT, never the defaults
(on a shared machine, someone else's Temporal); a NATS_URL the user sets is theirs, passed on."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
from pytest import MonkeyPatch

from launcher.processes import process_info
from launcher.stack import children_env, ensure_env_file
from testbed.nats import nats_server
from tests.stack.launcher import RunningStack, stack_env


def test_the_children_connect_to_the_ports_the_stack_listens_on() -> None:
    env, warnings = children_env({"TEMPORAL_PORT": "27233", "MEMORY_API_PORT": "28001", "PATH": "/bin"})
    assert env["TEMPORAL_ADDRESS"] == "localhost:27233" and env["MEMORY_API_URL"] == "http://localhost:28001"
    assert env["PATH"] == "/bin" and warnings == []
    defaults, _ = children_env({})
    assert defaults["TEMPORAL_ADDRESS"] == "localhost:7233" and defaults["MEMORY_API_URL"] == "http://localhost:8001"


def test_an_explicit_address_of_the_same_port_is_kept_and_a_conflicting_one_loses_with_a_warning() -> None:
    same = {"TEMPORAL_PORT": "27233", "TEMPORAL_ADDRESS": "127.0.0.1:27233", "MEMORY_API_URL": "http://[::1]:8001/"}
    env, warnings = children_env(same)
    assert env["TEMPORAL_ADDRESS"] == "127.0.0.1:27233" and env["MEMORY_API_URL"] == "http://[::1]:8001/"
    assert warnings == []
    other = {"TEMPORAL_PORT": "27233", "TEMPORAL_ADDRESS": "localhost:7233", "MEMORY_API_URL": "http://kb.example:8001"}
    env, warnings = children_env(other)
    assert env["TEMPORAL_ADDRESS"] == "localhost:27233" and env["MEMORY_API_URL"] == "http://localhost:8001"
    assert warnings == [
        "TEMPORAL_ADDRESS=localhost:7233 ignored: the worker and the gateway use the Temporal this stack starts, "
        "localhost:27233",
        "MEMORY_API_URL=http://kb.example:8001 ignored: the worker and the gateway use the memory API this stack "
        "starts, http://localhost:8001",
    ]


def service_of(pid: int) -> str | None:
    """ "worker.py" or "api.gateway" when `pid` runs that service."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    return next((name for name in ("worker.py", "api.gateway") if any(a.endswith(name) for a in argv)), None)


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    return dict(item.partition("=")[::2] for item in raw.split("\0") if item)


def test_a_stack_on_other_ports_is_one_stack(tmp_path: Path) -> None:
    env = stack_env(tmp_path)
    del env["TEMPORAL_ADDRESS"]  # as a user runs `TEMPORAL_PORT=... MEMORY_API_PORT=... make run`
    env["MEMORY_API_URL"] = "http://localhost:1"  # left over in the shell: loses, with a warning
    stack = RunningStack.start(tmp_path, env=env)
    try:
        stack.wait_until_up()
        temporal, memory, live = env["TEMPORAL_PORT"], env["MEMORY_API_PORT"], f"nats://127.0.0.1:{env['NATS_PORT']}"
        assert "MEMORY_API_URL=http://localhost:1 ignored" in stack.output()
        assert f"live channel     {live}" in stack.output()
        assert "[INF]" not in stack.output()  # nats-server's startup lines are not shown
        deadline = time.monotonic() + 60
        while "worker polling task queue" not in stack.output() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert f"on localhost:{temporal} (models:" in stack.output()  # the worker's own line: where it polls
        children = {role: environ(pid) for pid in stack.seen if (role := service_of(pid))}
        assert set(children) == {"worker.py", "api.gateway"}
        for child in children.values():
            assert child["TEMPORAL_ADDRESS"] == f"localhost:{temporal}"
            assert child["MEMORY_API_URL"] == f"http://localhost:{memory}"
            assert child["NATS_URL"] == live
        with socket.create_connection(("127.0.0.1", int(env["NATS_PORT"])), timeout=10) as client:
            assert client.recv(4096).startswith(b"INFO {")  # a NATS server's greeting: the stack's own serves it
        health = httpx.get(f"http://127.0.0.1:{env['GATEWAY_PORT']}/health", timeout=10).json()
        assert health["temporal"] is True, health
    finally:
        stack.kill_everything()
    stack.assert_all_gone()


def test_a_stack_given_a_nats_url_starts_no_nats_server_and_passes_it_on(tmp_path: Path) -> None:
    """NATS_PORT is held here: the stack must neither check nor take it; its worker and gateway get the user's URL."""
    env = stack_env(tmp_path)
    with nats_server() as theirs, socket.socket() as holder:
        holder.bind(("127.0.0.1", int(env["NATS_PORT"])))
        holder.listen()
        stack = RunningStack.start(tmp_path, env={**env, "NATS_URL": theirs.url})
        try:
            stack.wait_until_up()
            assert f"live channel     {theirs.url}" in stack.output() and "starting nats" not in stack.output()
            programs = {Path(info.argv[0]).name for pid in stack.seen if (info := process_info(pid)) and info.argv}
            assert "nats-server" not in programs
            children = [environ(pid) for pid in stack.seen if service_of(pid)]
            assert len(children) == 2 and all(child["NATS_URL"] == theirs.url for child in children)
        finally:
            stack.kill_everything()
    stack.assert_all_gone()


def test_make_run_gives_the_memory_api_a_service_key_of_its_own(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    for name in ("ORCHESTRATOR_API_KEY", "MEMORY_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    fresh = ensure_env_file(tmp_path / "fresh.env")
    assert fresh["ORCHESTRATOR_API_KEY"] != fresh["MEMORY_API_KEY"] and len(fresh["MEMORY_API_KEY"]) >= 32
    assert ensure_env_file(tmp_path / "fresh.env") == fresh  # nothing more is written on later starts
    old = tmp_path / "old.env"  # what earlier versions wrote: the tenant's key as the memory API's
    old.write_text("ORCHESTRATOR_API_KEY=k-0123456789abcdefghij\nMEMORY_API_KEY=k-0123456789abcdefghij\n")
    upgraded = ensure_env_file(old)
    assert upgraded["ORCHESTRATOR_API_KEY"] == "k-0123456789abcdefghij"
    assert upgraded["MEMORY_API_KEY"] not in ("", "k-0123456789abcdefghij")
