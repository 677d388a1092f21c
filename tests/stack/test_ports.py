"""A port `make run` needs is taken: it says which process holds it and, for an earlier stack, how to stop it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from launcher.binaries import nats_binary
from launcher.stack import port_open
from tests.stack.launcher import RunningStack, stack_env
from tests.support import ROOT

Launch = Callable[..., RunningStack]


def refused(stack: RunningStack) -> str:
    """The launcher's output once it gave up; it must have started nothing."""
    assert stack.proc.wait(timeout=60) == 1
    output = stack.output()
    assert "[stack] cannot start:" in output and "starting temporal" not in output, output
    assert not stack.alive()
    return output


def run_suggested(output: str) -> None:
    """Run the `kill ...` command the launcher printed, as a user would paste it."""
    command = re.search(r"stop it with Ctrl-C in its terminal, or: (kill .*)|with: (kill .*)", output)
    assert command, output
    subprocess.run(["bash", "-c", command.group(1) or command.group(2)], check=True)


def test_a_port_held_by_another_program_names_its_pid_and_command(launch: Launch, tmp_path: Path) -> None:
    env = stack_env(tmp_path)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", int(env["GATEWAY_PORT"])))
        holder.listen()
        stack = launch(env=env)
        output = refused(stack)
    stack.assert_all_gone()
    assert f"port {env['GATEWAY_PORT']} (gateway) is already in use by pid {os.getpid()}: " in output
    assert "pytest" in output and "set GATEWAY_PORT to another port" in output


def test_a_port_held_by_an_earlier_stack_names_the_command_that_stops_it(launch: Launch, tmp_path: Path) -> None:
    earlier = launch()
    earlier.wait_until_up()
    output = refused(launch(env=earlier.env))
    temporal_port = earlier.env["TEMPORAL_PORT"]
    assert f"port {temporal_port} (temporal) is already in use by pid " in output
    assert f"it is the temporal of an earlier `make run` still running (launcher pid {earlier.proc.pid}" in output
    run_suggested(output)
    assert earlier.proc.wait(timeout=30) == 0  # the suggested `kill` is a SIGTERM: an orderly stop
    earlier.assert_all_gone()


def test_a_port_held_by_what_an_earlier_stack_left_behind(launch: Launch, tmp_path: Path) -> None:
    """A service of this project still running without its launcher (an older launcher's orphan, or one started
    by hand): the command printed stops it and whatever it started."""
    env = stack_env(tmp_path)
    orphan = subprocess.Popen(
        [sys.executable, "-m", "api.gateway"], cwd=ROOT, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not port_open(int(env["GATEWAY_PORT"])):
            assert orphan.poll() is None and time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.2)
        output = refused(launch(env=env))
        assert f"in use by pid {orphan.pid}: {sys.executable} -m api.gateway" in output
        assert f"whose launcher is gone; stop what is left of it with: kill -- -{orphan.pid}\n" in output
        run_suggested(output)
        assert orphan.wait(timeout=30) == -signal.SIGTERM
    finally:
        orphan.kill()
        orphan.wait()


def test_a_held_nats_port_says_which_variable_moves_it(launch: Launch, tmp_path: Path) -> None:
    env = stack_env(tmp_path)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", int(env["NATS_PORT"])))
        holder.listen()
        output = refused(launch(env=env))
    assert f"port {env['NATS_PORT']} (nats) is already in use by pid {os.getpid()}: " in output
    assert "set NATS_PORT to another port" in output


def test_a_nats_server_an_earlier_stack_left_behind_is_named_and_stopped(launch: Launch, tmp_path: Path) -> None:
    env = stack_env(tmp_path)
    port = env["NATS_PORT"]
    orphan = subprocess.Popen(
        [nats_binary(), "-a", "127.0.0.1", "-p", port], cwd=ROOT, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not port_open(int(port)):
            assert orphan.poll() is None and time.monotonic() < deadline, "nats-server did not start"
            time.sleep(0.05)
        output = refused(launch(env=env))
        assert f"port {port} (nats) is already in use by pid {orphan.pid}: " in output
        assert "it is the nats of an earlier `make run` whose launcher is gone" in output
        assert f"stop what is left of it with: kill -- -{orphan.pid}\n" in output
        run_suggested(output)
        assert orphan.wait(timeout=30) in (0, -signal.SIGTERM)  # nats-server exits cleanly on SIGTERM
    finally:
        orphan.kill()
        orphan.wait()
