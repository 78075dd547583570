"""The README's examples run: CLI lines, harness scripts, benchmark runner, Python API blocks.

Blocks run in a scratch directory that links the packages and ``models/zoo_data`` of this
checkout, so relative paths in the README work and outputs (results files, bench-out) do
not land in the repository. ``../shared`` is mapped to the shared folder in use; lines that
need it are skipped when it is absent. Blocks fenced as ``text``/``toml`` or without a
language, and the install commands of the quick start, are documentation only.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.shared_data import benchmarks_available, shared_root
from verifier import cli

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("verifier", "bounds", "branching", "lut", "models", "vnnlib")
FIRST_RUN_SECTION = "## Command line"


def _blocks(language: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    text = text[text.index(FIRST_RUN_SECTION) :]
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in PACKAGES:
        (tmp_path / name).symlink_to(REPO / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _shell_line(line: str, cwd: Path) -> None:
    if line.startswith("verify "):
        argv = shlex.split(line.replace("../shared", str(shared_root())))[1:]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = cli.main(argv)
        assert code == 0, f"{line!r} exited {code}: {out.getvalue()[-500:]}"
        return
    env = dict(os.environ, NLVERIFY_PYTHON=sys.executable, NLVERIFY_CACHE=str(cwd / "cache"))
    run = subprocess.run(line, shell=True, cwd=cwd, env=env, capture_output=True, text=True)
    assert run.returncode == 0, f"{line!r}: {run.stderr[-500:]}"
    if line.startswith("head -1 results.txt"):
        assert run.stdout.strip() in ("sat", "unsat"), run.stdout


def test_readme_shell_examples(scratch: Path) -> None:
    lines = [ln.strip() for block in _blocks("bash") for ln in block.splitlines() if ln.strip()]
    assert any(ln.startswith("verify bench") for ln in lines)
    assert any("run_instance.sh" in ln for ln in lines)
    ran = 0
    for line in lines:
        if "install_tool.sh" in line or "pip install" in line:
            continue
        if "../shared" in line and not benchmarks_available():
            continue
        _shell_line(line, scratch)
        ran += 1
    assert ran >= 5
    if benchmarks_available():
        assert (scratch / "bench-out" / "report.md").is_file()


@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_readme_python_examples(scratch: Path, index: int) -> None:
    code = _blocks("python")[index]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"README.md python block {index}", "exec"), {"__name__": "readme"})
    assert out.getvalue() or "lut.branching_points" in code
