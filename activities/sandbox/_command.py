"""The command line of one sandboxed run: bubblewrap's namespaces and mounts, the uid drop, the limits.

Inside, the run sees a read-only system (/usr and the interpreter with its site-packages), a new /proc and /dev,
the request's files read-only at /src, and one writable directory, /sandbox: a tmpfs of `disk_bytes` that is
HOME, the working directory and TMPDIR. There is no /tmp, no /etc beyond the loader's cache, no network (a new
network namespace: its own loopback, nothing else), and no environment but PATH, HOME, TMPDIR, LANG and
PYTHONDONTWRITEBYTECODE. A shell copies /src into /sandbox, prints `STARTED` and execs pytest; output that
does not begin with `STARTED` means the sandbox never came up, and the code never ran.

As root, bubblewrap makes the namespaces with root's own rights and `setpriv` drops to `uid` (no groups, no
capabilities, no new privileges) before anything of the request runs: the code's processes belong to a real
unprivileged uid, so RLIMIT_NPROC binds (it never binds uid 0). As any other user, bubblewrap adds a user
namespace and forbids nested ones; the uid is already unprivileged.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import PurePosixPath

from workflows.models import SandboxLimits

SANDBOX_DIR = "/sandbox"
SOURCE_DIR = "/src"
STARTED = b"sandbox: started\n"
PATH = "/usr/local/bin:/usr/bin:/bin"
_SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_SHELL = 'cp -R /src/. /sandbox/ && mkdir -p /sandbox/.tmp && printf "sandbox: started\\n" && exec "$@"'


@dataclass(frozen=True)
class Interpreter:
    """The Python that runs pytest inside, and the host directories it needs (mounted read-only where it
    expects them: a virtualenv at its own path, its base installation at the base's)."""

    executable: str
    mounts: tuple[tuple[str, str], ...]  # (host path, path inside)


def find_interpreter(python: str) -> Interpreter:
    """Ask `python` (a trusted interpreter: the worker's own by default) where it lives."""
    script = "import json, sys; print(json.dumps([sys.prefix, sys.base_prefix]))"
    out = subprocess.run([python, "-I", "-c", script], capture_output=True, text=True, timeout=30, check=True)
    prefixes = [p for p in json.loads(out.stdout) if not _under(p, "/usr")]
    mounts = tuple(dict.fromkeys((os.path.realpath(p), p) for p in prefixes))
    return Interpreter(os.path.abspath(python), mounts)


def _under(path: str, root: str) -> bool:
    return PurePosixPath(path).is_relative_to(root)


@dataclass(frozen=True)
class SandboxCommand:
    bwrap: str  # absolute paths of the three tools
    setpriv: str
    prlimit: str
    interpreter: Interpreter
    uid: int | None  # the uid the code runs as when the worker is root; None: the worker's own (not root)

    def argv(self, source: str, argv: list[str], limits: SandboxLimits) -> list[str]:
        """The whole command: `argv` (e.g. python -m pytest ...) run inside, with `source` as /src."""
        return [
            self.bwrap,
            *self._namespaces(),
            *self._environment(),
            *self._mounts(source, limits),
            "--",
            *self._drop_uid(),
            *self._limits(limits),
            "/bin/sh",
            "-c",
            _SHELL,
            "sandbox",
            *argv,
        ]

    def _namespaces(self) -> list[str]:
        common = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup"]
        user = [] if self.uid is not None else ["--unshare-user", "--disable-userns"]
        return [*common, *user, "--hostname", "sandbox", "--die-with-parent", "--new-session"]

    def _environment(self) -> list[str]:
        env = {
            "PATH": PATH,
            "HOME": SANDBOX_DIR,
            "TMPDIR": f"{SANDBOX_DIR}/.tmp",
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",  # the interpreter's own plugins stay out of the run
        }
        return ["--clearenv", *[a for name, value in env.items() for a in ("--setenv", name, value)]]

    def _mounts(self, source: str, limits: SandboxLimits) -> list[str]:
        args = ["--ro-bind", "/usr", "/usr"]
        for path in _SYSTEM_LINKS:
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        args += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache", "--proc", "/proc", "--dev", "/dev"]
        made: set[str] = set()
        for host, inside in self.interpreter.mounts:
            for parent in reversed(PurePosixPath(inside).parents[:-1]):  # bubblewrap would make them 0700
                if str(parent) not in made and not _under(str(parent), "/usr"):
                    made.add(str(parent))
                    args += ["--perms", "0755", "--dir", str(parent)]
            args += ["--ro-bind", host, inside]
        args += ["--ro-bind", source, SOURCE_DIR]
        args += ["--perms", "01777", "--size", str(limits.disk_bytes), "--tmpfs", SANDBOX_DIR, "--chdir", SANDBOX_DIR]
        return args

    def _drop_uid(self) -> list[str]:
        if self.uid is None:
            return []
        uid = str(self.uid)
        caps = ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
        return [self.setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *caps, "--"]

    def _limits(self, limits: SandboxLimits) -> list[str]:
        return [
            self.prlimit,
            f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 1}",  # SIGXCPU, then SIGKILL a second later
            f"--as={limits.memory_bytes}",
            f"--nproc={limits.processes}",
            f"--nofile={limits.open_files}",
            f"--fsize={limits.file_bytes}",
            "--core=0",
            "--",
        ]
