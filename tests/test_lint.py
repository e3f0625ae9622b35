"""Lint and types are part of the test run: ruff and mypy over the repository, as pyproject.toml configures
them (mypy: the packages, with pydantic's plugin), so the one test command (README, .ci/run) covers both."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=900)


def test_ruff_finds_nothing() -> None:
    result = _run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, f"ruff check found problems:\n{result.stdout}{result.stderr}"


def test_mypy_finds_nothing_in_the_packages() -> None:
    result = _run("mypy")
    assert result.returncode == 0, f"mypy found problems:\n{result.stdout}{result.stderr}"
    assert "Success: no issues found" in result.stdout


def test_every_type_ignore_names_its_error_and_why() -> None:
    """A `type: ignore` silences one error code and says why; tests and benches are not type-checked, so
    one there would silence nothing."""
    bare = []
    for path in sorted(ROOT.glob("**/*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in (".venv", "build") or "__pycache__" in rel.parts or path == Path(__file__).resolve():
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not re.search(r"#\s*type:\s*ignore", line):
                continue
            unchecked = rel.parts[0] in ("tests", "bench")
            if unchecked or not re.search(r"# type: ignore\[[a-z-]+(, [a-z-]+)*\]  # \S", line):
                bare.append(f"{rel}:{n}: {line.strip()}")
    assert not bare, "type: ignore without an error code and a reason, or in unchecked code:\n" + "\n".join(bare)
