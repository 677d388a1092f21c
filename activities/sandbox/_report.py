"""A TestReport from what a run left: pytest's JUnit XML (written inside the sandbox, so only parsed, never
trusted further: a malformed or missing report is a failed run), the exit status and the captured output."""

from __future__ import annotations

import signal
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from activities.sandbox._process import Finished
from workflows.models import TestFailure, TestReport

MAX_MESSAGE = 1_500  # characters of one failure's message: the end of its traceback
MAX_FAILURES = 50
_SIGNAL_LIMITS: dict[int, str] = {signal.SIGXCPU: "cpu time", signal.SIGXFSZ: "file size"}
# pytest's exit codes that mean something other than "tests failed": 2 interrupted, 3 internal error,
# 4 usage error, 5 no tests collected.
_PYTEST_EXIT = {2: "pytest was interrupted", 3: "pytest internal error", 4: "pytest usage error", 5: "no tests ran"}


@dataclass
class JunitCounts:
    passed: int = 0
    failed: int = 0
    errors: int = 0
    failures: list[TestFailure] = field(default_factory=list)


def parse_junit(xml: bytes) -> JunitCounts | None:
    """Counts and failures from pytest's `xunit1` JUnit XML; None when it is not such a report."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    if root.tag not in ("testsuites", "testsuite"):
        return None
    counts = JunitCounts()
    for case in root.iter("testcase"):
        problem = case.find("failure")
        kind = "failed"
        if problem is None:
            problem, kind = case.find("error"), "errors"
        if problem is None:
            if case.find("skipped") is None:
                counts.passed += 1
            continue
        setattr(counts, kind, getattr(counts, kind) + 1)
        if len(counts.failures) < MAX_FAILURES:
            counts.failures.append(TestFailure(test=_node_id(case), message=_message(problem)))
    return counts


def _node_id(case: ET.Element) -> str:
    """pytest's node id (`test_solution.py::TestX::test_y[1]`) from a testcase's file, classname and name."""
    file, classname, name = case.get("file") or "", case.get("classname") or "", case.get("name") or ""
    module = file.removesuffix(".py").replace("/", ".")
    classes = classname[len(module) :].strip(".") if module and classname.startswith(module) else ""
    parts = [file or classname, *filter(None, classes.split(".")), name]
    return "::".join(p for p in parts if p) or "?"


def _message(problem: ET.Element) -> str:
    text = (problem.text or "").strip() or problem.get("message") or ""
    return text if len(text) <= MAX_MESSAGE else "…" + text[-MAX_MESSAGE:]


def build_report(run: Finished, junit: bytes, started: bool) -> TestReport:
    """The report of a run that started (`started`: the sandbox came up and pytest was executed)."""
    counts = parse_junit(junit) if junit else None
    head, tail = _decode(run.capture.head), _decode(run.capture.tail)
    if started:
        head = head.removeprefix("sandbox: started\n")
    killed_by = run.stopped_by if run.stopped_by != "wall time" else None
    if killed_by is None and run.exit_code is not None:
        killed_by = _limit_from_exit(run.exit_code, counts, head + tail)
    timed_out = run.stopped_by == "wall time"
    report = TestReport(
        outcome="timed_out" if timed_out else "killed" if killed_by else "failed",
        exit_code=run.exit_code,
        timed_out=timed_out,
        killed_by=killed_by,
        duration_ms=run.duration_ms,
        output_head=head,
        output_tail=tail,
        output_bytes_cut=run.capture.cut,
    )
    if counts is not None:
        report.passed, report.failed, report.errors = counts.passed, counts.failed, counts.errors
        report.failures = counts.failures
    elif report.outcome == "failed":
        reason = _PYTEST_EXIT.get(run.exit_code or 0, "pytest wrote no report")
        report.errors = 1
        report.failures = [TestFailure(test="(run)", message=f"{reason}; output ends: {_last_lines(head + tail)}")]
    clean = counts is not None and counts.passed > 0 and counts.failed == counts.errors == 0
    if report.outcome == "failed" and run.exit_code == 0 and clean:
        report.outcome = "passed"
    return report


def _limit_from_exit(exit_code: int, counts: JunitCounts | None, output: str) -> str | None:
    """The limit that killed pytest itself (a test's own subprocess dying is a test failure, not this)."""
    if counts is not None:
        return None
    if 128 < exit_code < 128 + signal.NSIG:  # the shell's way to say a signal ended it
        signum = exit_code - 128
        name = next((s.name for s in signal.Signals if s == signum), str(signum))
        return _SIGNAL_LIMITS.get(signum, f"signal {name}")
    if "MemoryError" in output:
        return "memory"
    return None


def _decode(data: bytes | bytearray) -> str:
    return bytes(data).decode("utf-8", "replace")


def _last_lines(text: str, lines: int = 5) -> str:
    return " / ".join(text.strip().splitlines()[-lines:])[-MAX_MESSAGE:]
