"""Untrusted code against the sandbox: each attack is stopped or contained, the report says why, no process of
the run is left, nothing reaches the host, and the worker serves the next run (`Sandbox.run`, `serves`)."""

from __future__ import annotations

import os
import socket
import textwrap
import uuid
from pathlib import Path

import pytest

from tests.activities.conftest import Sandbox
from workflows.models import SandboxLimits

# Writes `n` bytes straight to the run's output pipe, past pytest's capture of fd 1 and 2 (which it keeps as a
# saved duplicate: any pipe among the open descriptors is that output).
TO_THE_PIPE = """
import os, stat

def pipes():
    return [fd for fd in range(3, 64) if _is_pipe(fd)]

def _is_pipe(fd):
    try:
        return stat.S_ISFIFO(os.fstat(fd).st_mode)
    except OSError:
        return False

def write_out(data, times=1):
    for fd in pipes():
        for _ in range(times):
            os.write(fd, data)
"""


def source(text: str) -> str:
    return textwrap.dedent(text).lstrip()


def failure_text(report: object) -> str:
    return " ".join(f"{f.test} {f.message}" for f in getattr(report, "failures", []))


async def test_fork_bomb_is_stopped(sandbox: Sandbox) -> None:
    tests = source("""
        import os

        def test_bomb():
            while True:
                try:
                    os.fork()
                except OSError:
                    pass
    """)
    report = await sandbox.run(tests, limits=SandboxLimits(wall_seconds=5, cpu_seconds=30, processes=32))
    assert report.outcome == "timed_out" and report.timed_out, report
    assert "stopped: wall time" in report.summary()
    await sandbox.serves()


async def test_busy_loop_hits_the_cpu_limit(sandbox: Sandbox) -> None:
    report = await sandbox.run("def test_spin():\n    while True:\n        pass\n", limits=SandboxLimits(cpu_seconds=2))
    assert (report.outcome, report.killed_by) == ("killed", "cpu time"), report
    await sandbox.serves()


async def test_busy_loop_hits_the_wall_limit_when_cpu_allows(sandbox: Sandbox) -> None:
    tests = "import time\n\ndef test_sleep():\n    time.sleep(60)\n"
    report = await sandbox.run(tests, limits=SandboxLimits(wall_seconds=2))
    assert report.outcome == "timed_out" and report.duration_ms < 10_000, report
    await sandbox.serves()


async def test_4_gb_allocation_is_refused(sandbox: Sandbox) -> None:
    report = await sandbox.run("def test_big():\n    data = bytearray(4 * 2**30)\n    assert data\n")
    assert (report.outcome, report.failed) == ("failed", 1), report
    assert "MemoryError" in failure_text(report)
    await sandbox.serves()


async def test_100_mb_to_stdout_is_cut_and_stopped(sandbox: Sandbox) -> None:
    tests = TO_THE_PIPE + "\ndef test_flood():\n    write_out(b'x' * 2**20, times=100)\n"
    limits = SandboxLimits(output_bytes=64 * 2**10)
    report = await sandbox.run(tests, limits=limits)
    assert (report.outcome, report.killed_by) == ("killed", "output"), report
    assert len(report.output_head) + len(report.output_tail) <= limits.output_bytes
    # stopped past 10x output_bytes: what was still in flight when it died is counted, not kept
    assert 10 * limits.output_bytes < report.output_bytes_cut < 50 * 2**20
    await sandbox.serves()


async def test_100_mb_printed_under_capture_is_bounded(sandbox: Sandbox) -> None:
    report = await sandbox.run("def test_print():\n    for _ in range(100):\n        print('x' * 2**20)\n")
    assert report.failed == 1, report
    assert "File too large" in failure_text(report)  # pytest's capture file hit the file size limit
    # pytest then prints what it captured (16 MB): the output cap stops that
    assert report.outcome in ("failed", "killed") and report.killed_by in (None, "output"), report
    await sandbox.serves()


async def test_2_gb_file_is_refused(sandbox: Sandbox) -> None:
    tests = source("""
        def test_file():
            with open('big', 'wb') as f:
                for _ in range(2048):
                    f.write(b'x' * 2**20)
    """)
    report = await sandbox.run(tests)
    assert (report.outcome, report.failed) == ("failed", 1), report
    assert "File too large" in failure_text(report)
    await sandbox.serves()


@pytest.mark.parametrize(
    "target",
    ["/tmp/{name}", "../{name}", "/usr/{name}", "/{name}", "{host}/{name}"],
    ids=["tmp", "parent", "usr", "root", "host-path"],
)
async def test_writes_outside_its_directory_fail(sandbox: Sandbox, tmp_path: Path, target: str) -> None:
    name = f"escape-{uuid.uuid4().hex}"
    path = target.format(name=name, host=tmp_path)
    tests = f"def test_write():\n    with open({path!r}, 'w') as f:\n        f.write('escaped')\n"
    report = await sandbox.run(tests)
    assert (report.outcome, report.failed) == ("failed", 1), report
    assert any(e in failure_text(report) for e in ("Read-only file system", "No such file", "Permission denied"))
    for host in (Path("/tmp", name), Path("/usr", name), Path("/", name), tmp_path / name, Path.cwd() / name):
        assert not host.exists()
    await sandbox.serves()


async def test_symlink_escape_fails(sandbox: Sandbox, tmp_path: Path) -> None:
    host = tmp_path / f"escape-{uuid.uuid4().hex}"
    tests = (
        "import os\n\ndef test_link():\n"
        f"    os.symlink({str(host)!r}, 'out')\n    os.symlink('/proc/1/root{host}', 'out2')\n"
        "    for link in ('out', 'out2'):\n"
        "        try:\n            open(link, 'w').write('escaped')\n        except OSError as exc:\n"
        "            print(link, exc)\n"
        "    assert not os.path.exists('out') and not os.path.exists('out2')\n"
    )
    report = await sandbox.run(tests)
    assert report.outcome == "passed", report
    assert not host.exists()
    await sandbox.serves()


async def test_no_worker_environment_reaches_the_code(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"sk-test-{uuid.uuid4().hex}"
    for name in ("OPENAI_API_KEY", "ORCHESTRATOR_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.setenv(name, secret)
    tests = source("""
        import os

        def read(path):
            try:
                return open(path, 'rb').read().decode('latin-1')
            except OSError as exc:
                return repr(exc)

        def test_environment():
            seen = [repr(dict(os.environ)), read('/proc/1/environ'), read('/proc/self/environ')]
            seen += [read(f'/proc/{pid}/environ') for pid in os.listdir('/proc') if pid.isdigit()]
            print('\\n'.join(seen))
            assert False, '\\n'.join(seen)
    """)
    report = await sandbox.run(tests)
    assert report.failed == 1, report
    everything = report.model_dump_json()
    assert "HOME" in everything and "/sandbox" in everything  # the code did read its environment...
    assert secret not in everything  # ...and the worker's was not in it
    assert "OPENAI_API_KEY" not in everything
    await sandbox.serves()


async def test_no_network_not_even_the_workers_loopback(sandbox: Sandbox) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        tests = source(f"""
            import socket, time

            def attempt(address):
                started = time.monotonic()
                try:
                    socket.create_connection(address, timeout=5).close()
                    return 'connected'
                except OSError as exc:
                    return f'{{type(exc).__name__}} {{exc.errno}} {{time.monotonic() - started:.2f}}'

            def test_connect():
                assert False, [attempt(('127.0.0.1', {port})), attempt(('10.255.255.1', 80))]
        """)
        report = await sandbox.run(tests)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever reached the worker's listener
    message = failure_text(report)
    assert "connected'" not in message, message
    assert "ConnectionRefusedError 111" in message  # the sandbox's own loopback, where nothing listens
    assert "OSError 101" in message  # network unreachable: there is no route out at all
    await sandbox.serves()


async def test_double_forked_daemon_dies_with_the_run(sandbox: Sandbox) -> None:
    tests = (
        "import os, time\n\ndef test_daemon():\n    if os.fork() == 0:\n        os.setsid()\n"
        "        if os.fork() == 0:\n            time.sleep(300)\n        os._exit(0)\n    time.sleep(0.5)\n"
    )
    report = await sandbox.run(tests)  # asserts no process with the run's marker is left
    assert report.outcome == "passed", report
    await sandbox.serves()


async def test_tests_importing_a_missing_module(sandbox: Sandbox) -> None:
    report = await sandbox.run("import no_such_module\n\ndef test_x():\n    pass\n")
    assert (report.outcome, report.errors, report.passed) == ("failed", 1, 0), report
    assert "No module named 'no_such_module'" in failure_text(report)
    await sandbox.serves()


async def test_candidate_with_a_syntax_error(sandbox: Sandbox) -> None:
    report = await sandbox.run(
        "from solution import mul\n\ndef test_x():\n    assert mul(1, 1) == 1\n", code="def mul(:\n"
    )
    assert (report.outcome, report.errors) == ("failed", 1), report
    assert "SyntaxError" in failure_text(report)
    await sandbox.serves()


@pytest.mark.parametrize("where", ["module", "tests"])
async def test_sys_exit_0_at_import_is_not_a_pass(sandbox: Sandbox, where: str) -> None:
    exiting = "import sys\nsys.exit(0)\n"
    tests = "from solution import mul\n\ndef test_x():\n    assert mul(1, 1) == 1\n"
    if where == "module":
        report = await sandbox.run(tests, code=exiting)
    else:
        report = await sandbox.run(exiting + tests)
    assert report.outcome == "failed" and report.passed == 0, report
    await sandbox.serves()


async def test_invalid_utf8_output(sandbox: Sandbox) -> None:
    tests = TO_THE_PIPE + (
        "\nimport sys\n\ndef test_bytes():\n    write_out(b'raw \\xff\\xfe\\xc3(')\n"
        "    sys.stdout.buffer.write(b'captured \\xff\\xfe')\n    assert False, b'\\xff'.decode('latin-1')\n"
    )
    report = await sandbox.run(tests)
    assert report.failed == 1, report
    assert "raw \ufffd\ufffd\ufffd(" in report.output_head + report.output_tail
    report.model_dump_json()  # the report is valid text throughout
    await sandbox.serves()


def test_host_environment_is_as_the_attacks_assume() -> None:
    """The attacks' checks read /proc of the host: they would pass vacuously without it."""
    assert Path(f"/proc/{os.getpid()}/cmdline").exists()
