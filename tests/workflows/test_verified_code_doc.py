"""docs/verified-code.md's examples run as written: the REST one against a gateway, the CLI one with the real
`temporal` binary, both on a worker with the fake provider and the real sandbox; each output must match the JSON
shown after it (the matching rules of the CLI guide's test)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid

from temporalio.client import Client
from temporalio.worker import Worker

from tests.gateway.support import live_server, make_app
from tests.stack.test_cli_guide import FENCE, json_documents, matches, run_bash, substitute
from tests.support import ALICE_KEY, ROOT, binary
from workflows.models import TASK_QUEUE

DOC = ROOT / "docs" / "verified-code.md"


def examples() -> list[tuple[str, object]]:
    """(bash block, the JSON shown after it) of the page's examples section."""
    text = DOC.read_text(encoding="utf-8")
    section = re.search(r"<!-- section:verified-code -->(.*?)<!-- /section:verified-code -->", text, re.DOTALL)
    assert section, "docs/verified-code.md has no examples section"
    blocks = FENCE.findall(section.group(1))
    return [(body, json.loads(blocks[i + 1][1])) for i, (kind, body) in enumerate(blocks) if kind == "bash"]


async def test_the_verified_code_examples_run_as_written(client: Client, worker: Worker, task_queue: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    steps = examples()
    assert len(steps) == 2
    async with live_server(make_app(task_queue, client)) as url:
        names = {
            "http://localhost:8002": url,
            TASK_QUEUE: task_queue,
            "verified-1": f"verified-1-{suffix}",
            "verified-2": f"verified-2-{suffix}",
        }
        environ = {
            **os.environ,
            "PATH": f"{os.path.dirname(binary('temporal'))}{os.pathsep}{os.environ.get('PATH', '')}",
            "TEMPORAL_ADDRESS": client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": client.namespace,
            "KEY": ALICE_KEY,
        }
        for number, (block, shown) in enumerate(steps, 1):
            script = substitute(block, names)
            expected = json.loads(substitute(json.dumps(shown), names))
            deadline = time.monotonic() + 90  # the task moves on by itself; the visibility store catches up
            while True:
                done = await asyncio.to_thread(run_bash, script, environ)
                assert done.returncode == 0, f"example {number} failed:\n{script}\n{done.stdout}\n{done.stderr}"
                if any(matches(expected, document) for document in json_documents(done.stdout)):
                    break
                assert time.monotonic() < deadline, f"example {number} never matched the page:\n{done.stdout}"
                await asyncio.sleep(0.5)
