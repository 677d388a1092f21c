"""Processes as Linux shows them in /proc: who holds a port, what a process runs, its parent and group, its
memory and CPU time (the benchmarks read those).

`make run` uses it to name what holds a port it needs (no `lsof` or `ss` on a minimal machine, no psutil), and
to make each child die with the launcher (`PR_SET_PDEATHSIG`). Elsewhere (macOS) the look-ups find nothing and
the launcher says less; nothing else changes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shlex
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
_TCP_LISTEN = "0A"
_PR_SET_PDEATHSIG = 1
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    pgid: int
    sid: int
    argv: tuple[str, ...]
    cwd: str | None  # None when this user may not read it

    @property
    def command(self) -> str:
        text = shlex.join(self.argv) if self.argv else f"[pid {self.pid}]"
        return text if len(text) <= 200 else text[:197] + "..."


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (the state first), None when `pid` is gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()  # the command name in (...) may hold spaces


def alive(pid: int) -> bool:
    """Running, and not a zombie waiting to be reaped."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot), None when it is gone."""
    fields = _stat(pid)
    return None if fields is None else int(fields[19])


def cpu_seconds(pid: int) -> float:
    """The CPU time `pid` used (user + system), 0 when it is gone."""
    fields = _stat(pid)
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / _CLK_TCK


def rss_kb(pid: int) -> int:
    """The resident memory of `pid` in KiB, 0 when it is gone."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def command_name(pid: int) -> str:
    """The kernel's short name of what `pid` runs (`/proc/<pid>/comm`), empty when it is gone."""
    with contextlib.suppress(OSError):
        return (PROC / str(pid) / "comm").read_text().strip()
    return ""


def children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    if not PROC.is_dir():
        return []
    return [
        int(entry.name)
        for entry in PROC.iterdir()
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None and int(fields[1]) == pid
    ]


def process_info(pid: int) -> ProcessInfo | None:
    """What `pid` runs, or None when it is gone (or a zombie, which holds nothing any more)."""
    base = PROC / str(pid)
    fields = _stat(pid)
    try:
        argv = tuple(part for part in (base / "cmdline").read_bytes().decode(errors="replace").split("\0") if part)
    except OSError:
        return None
    if fields is None or fields[0] == "Z":
        return None
    cwd: str | None = None
    with contextlib.suppress(OSError):
        cwd = os.readlink(base / "cwd")
    return ProcessInfo(pid=pid, ppid=int(fields[1]), pgid=int(fields[2]), sid=int(fields[3]), argv=argv, cwd=cwd)


def all_processes() -> Iterator[ProcessInfo]:
    if not PROC.is_dir():
        return
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (info := process_info(int(entry.name))) is not None:
            yield info


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in (PROC / "net" / table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == _TCP_LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def port_holder(port: int) -> ProcessInfo | None:
    """The process listening on TCP `port`, if this user can see it."""
    inodes = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not inodes:
        return None
    for info in all_processes():
        with contextlib.suppress(OSError):
            for fd in (PROC / str(info.pid) / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return info
    return None


def ancestors(info: ProcessInfo) -> Iterator[ProcessInfo]:
    seen = {info.pid}
    while info.ppid > 1 and info.ppid not in seen and (parent := process_info(info.ppid)) is not None:
        seen.add(parent.pid)
        yield parent
        info = parent


def die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A `preexec_fn`: the child gets SIGKILL when its parent dies, however it dies (Linux only).

    Inherited dispositions are reset too: a launcher started as a shell's background job ignores SIGINT, and
    its children must not inherit that. It runs between fork and exec, so it only calls what is already loaded.
    """

    def setup() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        if _libc is not None:
            _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent_pid:  # the parent died before the line above: nobody would ever kill us
                os.kill(os.getpid(), signal.SIGKILL)

    return setup
