"""The `python -m api.memory` CLI, run as a subprocess the way users run it."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
KEY = "cli-test-key-0123456789abcdef"


def run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.memory", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ORCHESTRATOR_API_KEY", "EMBEDDING_", "MEMORY_"))}
    base.update({"MEMORY_DB_PATH": str(tmp_path / "kb.db"), "EMBEDDING_MODEL": ""})
    return base


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "durations.py").write_text(
        'def parse_iso_duration(text):\n    """Seconds in an ISO-8601 duration."""\n    return 0\n'
    )
    (root / "README.md").write_text("# Demo\n\nHow to use the duration parser.\n")
    (root / "latin1.txt").write_bytes("caf\xe9 cr\xe8me br\xfbl\xe9e\n".encode("latin-1"))
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0")
    (root / "blob.dat2").write_bytes(b"abc\0def" * 10)
    for skipped in ("node_modules/lib", ".git/objects", "build", "__pycache__", ".venv/lib", "pkg/_vendor"):
        (root / skipped).mkdir(parents=True)
        (root / skipped / "hidden.py").write_text("def should_not_be_indexed():\n    pass\n")
    return root


def test_index_query_and_reindex(env: dict[str, str], tree: Path) -> None:
    r = run(["index", str(tree), "--source-prefix", "demo/"], env)
    assert r.returncode == 0, r.stderr
    assert "indexed 3 files" in r.stdout and "3 added" in r.stdout and "1 skipped" in r.stdout
    assert "latin1.txt is not valid UTF-8" in r.stderr
    r = run(["index", str(tree), "--source-prefix", "demo/"], env)
    assert "3 unchanged" in r.stdout and "0 added" in r.stdout
    r = run(["query", "ParseISODuration"], env)
    assert r.returncode == 0 and "demo/pkg/durations.py:1-3 parse_iso_duration" in r.stdout.splitlines()[0]
    r = run(["query", "should not be indexed"], env)
    assert "hidden.py" not in r.stdout
    (tree / "README.md").unlink()
    r = run(["index", str(tree), "--source-prefix", "demo/", "--prune"], env)
    assert "1 pruned" in r.stdout
    r = run(["stats"], env)
    assert "2 documents" in r.stdout


def test_index_embeds_with_the_default_model(env: dict[str, str], tree: Path) -> None:
    env = {k: v for k, v in env.items() if k != "EMBEDDING_MODEL"}  # the default: local:all-MiniLM-L6-v2
    r = run(["index", str(tree), "--no-embed"], env)
    assert r.returncode == 0 and "0 chunks embedded" in r.stdout, r.stderr
    assert "0 vectors (local:all-MiniLM-L6-v2)" in run(["stats"], env).stdout
    r = run(["index", str(tree)], env)  # nothing changed, but the missing vectors are made now
    assert r.returncode == 0 and "3 unchanged" in r.stdout and "3 chunks embedded" in r.stdout, r.stdout
    assert "3 vectors (local:all-MiniLM-L6-v2)" in run(["stats"], env).stdout
    r = run(["query", "how long does an ISO-8601 period last in seconds"], env)
    assert r.returncode == 0 and "pkg/durations.py:1-3 parse_iso_duration" in r.stdout.splitlines()[0]
    r = run(["query", "x"], {**env, "EMBEDDING_MODEL": "local:/no/such/model"})
    assert r.returncode == 0 and "BM25 only" in r.stderr  # a broken model degrades, it does not stop the CLI


def test_clear_errors(env: dict[str, str], tmp_path: Path) -> None:
    r = run(["index", str(tmp_path / "missing")], env)
    assert r.returncode == 2 and "does not exist" in r.stderr
    (tmp_path / "kb.db").write_bytes(b"not a database" * 100)
    r = run(["query", "x"], env)
    assert r.returncode == 1 and "corrupt" in r.stderr and "Traceback" not in r.stderr
    r = run(["serve"], env)  # no API key configured
    assert r.returncode == 2 and "ORCHESTRATOR_API_KEY" in r.stderr
    r = run(["query", "x", "--top-k", "0"], env)
    assert r.returncode == 2


def test_serve(env: dict[str, str], tree: Path) -> None:
    assert run(["index", str(tree)], env).returncode == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**env, "ORCHESTRATOR_API_KEY": KEY, "MEMORY_API_PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.memory", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "server did not start"
            time.sleep(0.1)
        r = httpx.post(f"{url}/rag_query", json={"query": "iso duration", "top_k": 2}, headers={"X-API-KEY": KEY})
        assert r.status_code == 200 and r.json()["results"][0]["source"] == "pkg/durations.py"
        assert httpx.post(f"{url}/rag_query", json={"query": "x", "top_k": 2}).status_code == 401
        # An idle connection outlives the worker's client pool's (httpx: 5 s), so that client closes it first.
        conn = http.client.HTTPConnection("127.0.0.1", port)
        try:
            conn.request("GET", "/health")
            assert conn.getresponse().read() == b'{"status":"ok"}'
            kept = conn.sock
            time.sleep(6)
            conn.request("GET", "/health")  # on the same socket: RemoteDisconnected had the server closed it
            assert conn.getresponse().read() == b'{"status":"ok"}' and conn.sock is kept
        finally:
            conn.close()
    finally:
        proc.terminate()
        proc.wait(10)
