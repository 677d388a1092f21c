"""The /proc readers the launcher and the benchmarks share, on this process and a child of it."""

import os
import subprocess
import sys

from launcher.processes import alive, children_of, command_name, cpu_seconds, process_info, rss_kb, start_time


def test_the_readers_see_this_process_and_its_child() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in children_of(os.getpid())
        assert alive(child.pid)
        assert command_name(child.pid).startswith("python")
        info = process_info(child.pid)
        assert info is not None and info.ppid == os.getpid() and info.argv[0] == sys.executable
        started = start_time(child.pid)
        assert started is not None and started >= (start_time(os.getpid()) or 0)
        assert rss_kb(os.getpid()) > 10_000  # an interpreter with pytest loaded
        sum(range(3_000_000))
        assert cpu_seconds(os.getpid()) > 0
    finally:
        child.kill()
        child.wait()
    assert not alive(child.pid)
    assert (rss_kb(child.pid), cpu_seconds(child.pid), start_time(child.pid), command_name(child.pid)) == (
        0,
        0.0,
        None,
        "",
    )
    assert child.pid not in children_of(os.getpid())
