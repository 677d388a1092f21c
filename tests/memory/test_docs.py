"""docs/memory.md's shell blocks run as written: index, query, serve, then its curl examples against that server."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from .samples import FILES

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "memory.md"


def blocks() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    body = text[text.index("<!-- section:memory -->") : text.index("<!-- /section:memory -->")]
    return re.findall(r"```bash\n(.*?)```", body, re.DOTALL)


def test_the_memory_page_runs_as_written(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "src" / "myrepo").mkdir(parents=True)
    (home / "src" / "myrepo" / "storage.py").write_text(FILES)
    bin_dir = Path(sys.executable).parent  # `python` in the page is this environment's
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = ["set -euo pipefail"]
    for block in blocks():
        for line in block.replace("localhost:8001", f"localhost:{port}").splitlines():
            if line.startswith("python -m api.memory serve"):
                # Started in the background (it serves until stopped) and stopped on every exit path.
                script += [
                    "python -m api.memory serve > serve.log 2>&1 & server=$!",
                    "trap 'kill $server; wait $server || true' EXIT",
                    f"for _ in $(seq 300); do curl -sf localhost:{port}/health > /dev/null && break; sleep 0.1; done",
                ]
            else:
                script.append(line)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ORCHESTRATOR_API_KEY", "EMBEDDING_", "MEMORY_"))},
        "HOME": str(home),
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "MEMORY_DB_PATH": str(tmp_path / "memory.db"),
        "MEMORY_API_PORT": str(port),
    }
    run = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )
    log = (tmp_path / "serve.log").read_text() if (tmp_path / "serve.log").exists() else ""
    assert run.returncode == 0, (run.stdout, run.stderr, log)
    lines = run.stdout.splitlines()
    assert any("indexed 1 files" in line and "chunks embedded" in line for line in lines), run.stdout
    assert (
        " 1. " in run.stdout and "myrepo/storage.py" in run.stdout and "atomic_write" in run.stdout
    )  # the query's top hit
    answers, rest = [], run.stdout[run.stdout.index("{") :]  # curl -s prints no newline after each answer
    while rest.strip():
        answer, end = json.JSONDecoder().raw_decode(rest)
        answers.append(answer)
        rest = rest[end:].lstrip()
    assert len(answers) == 3, run.stdout  # rag_query, POST /documents, DELETE /documents
    assert answers[0]["results"][0]["name"] == "parse_iso_duration" and answers[0]["mode"] == "hybrid"
    assert answers[1]["results"][0]["status"] == "added"
    assert answers[2] == {"source": "notes/deploy.md", "deleted_chunks": 1}
