"""However the launcher dies, nothing it started outlives it: every process gone, every port free within 10 s."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import termios
import threading
import time
from collections.abc import Callable

from tests.stack.launcher import UP, RunningStack

Launch = Callable[..., RunningStack]


def ignore_sigint() -> None:
    """What a shell does to a script's background job: the launcher starts with SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_ctrl_c_stops_everything_even_when_sigint_was_ignored_at_start(launch: Launch) -> None:
    stack = launch(preexec_fn=ignore_sigint)
    stack.wait_until_up()
    stack.proc.send_signal(signal.SIGINT)
    assert stack.proc.wait(timeout=30) == 0
    stack.assert_all_gone()
    assert "SIGINT: stopping" in stack.output()


def test_sigterm_to_the_launcher_stops_everything(launch: Launch) -> None:
    stack = launch()
    stack.wait_until_up()
    stack.proc.send_signal(signal.SIGTERM)
    assert stack.proc.wait(timeout=30) == 0
    stack.assert_all_gone()
    assert "SIGTERM: stopping" in stack.output() and "killing" not in stack.output()


def test_sigterm_to_the_process_group_of_make_run(launch: Launch) -> None:
    """`timeout`, systemd and CI runners signal the whole group: make passes its SIGTERM on to the launcher too,
    which takes the two as one request and stops in order."""
    stack = launch(command=["make", "--no-print-directory", "run"], start_new_session=True)
    stack.wait_until_up()
    os.killpg(stack.proc.pid, signal.SIGTERM)
    stack.proc.wait(timeout=30)
    stack.assert_all_gone()
    output = stack.output()
    assert "SIGTERM: stopping" in output and "[stack] stopping temporal" in output and "killing" not in output


def test_closing_the_terminal_stops_everything(launch: Launch) -> None:
    """The launcher's controlling terminal goes away: SIGHUP, and every later write to it fails."""
    master, slave = pty.openpty()

    def own_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # a new session (start_new_session) whose terminal is the pty

    stack = launch(stdout=slave, start_new_session=True, preexec_fn=own_terminal, stdin=slave)
    os.close(slave)
    seen = bytearray()
    reading = threading.Event()
    reading.set()

    def read_terminal() -> None:
        while reading.is_set():
            if select.select([master], [], [], 0.1)[0]:
                try:
                    seen.extend(os.read(master, 65536))
                except OSError:
                    return

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    stack.wait_until_up(output=lambda: seen.decode(errors="replace"))
    reading.clear()
    reader.join()
    os.close(master)  # the terminal closes: the kernel sends SIGHUP to the session
    assert stack.proc.wait(timeout=30) == 0
    stack.assert_all_gone()


def test_sigkill_of_the_launcher_takes_every_child_with_it(launch: Launch) -> None:
    stack = launch()
    stack.wait_until_up()
    time.sleep(2)  # the worker's warm pylint processes are up too
    stack.record()
    assert len(stack.seen) >= 5, stack.seen  # launcher, Temporal, memory API, worker, gateway (+ pylint)
    stack.proc.kill()
    stack.assert_all_gone()


def test_a_second_signal_while_stopping_kills_what_is_left(launch: Launch) -> None:
    stack = launch()
    stack.wait_until_up()
    stack.proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    stack.proc.send_signal(signal.SIGTERM)  # an impatient user, or a supervisor's second request
    assert stack.proc.wait(timeout=30) == 0
    stack.assert_all_gone()
    assert "second signal: killing what is left" in stack.output()


def test_teardown_stops_a_stack_whose_launcher_does_not_answer(launch: Launch) -> None:
    """What the fixtures' teardown relies on when a test fails: the stack stops by pid, cooperative or not."""
    stack = launch()
    stack.wait_until_up()
    stack.proc.send_signal(signal.SIGSTOP)  # a launcher that handles nothing
    stack.kill_everything(grace=1)
    stack.assert_all_gone()
    assert UP in stack.output()
