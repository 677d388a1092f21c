#!/usr/bin/env python3
"""Print the event id to reset a CodingTask to, so it re-runs from a chosen step. Standard library only.

    temporal workflow show --workflow-id my-task-1 -o json | python3 scripts/reset_point.py code_generation

Reads the history JSON on stdin and prints the id of the WorkflowTaskCompleted event that scheduled the first
activity whose summary starts with the given text (`planner`, `code_generation`, `documentation`, `lint`, `rag`;
the summaries the Web UI shows) or whose activity type equals it. `--last` picks the last match instead.
`temporal workflow reset --event-id <that id>` then re-runs the task from just before that activity.
With payload encryption on, pass the codec server to `temporal workflow show` (`--codec-endpoint`, `--codec-auth`)
so the summaries are readable.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from typing import Any


def summary_text(event: dict[str, Any]) -> str:
    summary = (event.get("userMetadata") or {}).get("summary") or {}
    data = summary.get("data")
    if isinstance(data, str):  # a raw payload: base64 JSON string
        try:
            value = json.loads(base64.b64decode(data))
        except ValueError:
            return ""
        return value if isinstance(value, str) else ""
    return ""


def reset_points(history: dict[str, Any], step: str) -> list[int]:
    found = []
    for event in history.get("events", []):
        attributes = event.get("activityTaskScheduledEventAttributes")
        if not attributes:
            continue
        activity_type = (attributes.get("activityType") or {}).get("name", "")
        if summary_text(event).startswith(step) or activity_type == step:
            found.append(int(attributes["workflowTaskCompletedEventId"]))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", help="summary prefix or activity type, e.g. code_generation")
    parser.add_argument("--last", action="store_true", help="the last matching activity instead of the first")
    args = parser.parse_args()
    points = reset_points(json.load(sys.stdin), args.step)
    if not points:
        sys.stderr.write(f"no activity matching {args.step!r} in this history\n")
        return 1
    sys.stdout.write(f"{points[-1] if args.last else points[0]}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
