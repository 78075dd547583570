"""The ``verify`` command line: outputs, results file, JSON, exit codes, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.verifier.linear_model import spec_text, write_model
from verifier import cli

REPO = Path(__file__).resolve().parents[2]
# Slack on top of a time budget when a test checks that the budget is honoured: generous
# (a loaded CI machine), yet far below what the work would take if the deadline were ignored.
DEADLINE_SLACK_S = 10.0


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    good = write_model(tmp_path / "lin.onnx")
    data = good.read_bytes()
    out = {
        "model": good,
        "sat": tmp_path / "sat.vnnlib",
        "safe": tmp_path / "safe.vnnlib",
        "empty_onnx": tmp_path / "empty.onnx",
        "truncated_onnx": tmp_path / "truncated.onnx",
        "unknown_op": write_model(tmp_path / "unknown_op.onnx", op="BitShift"),
        "undeclared": tmp_path / "undeclared.vnnlib",
        "x_mismatch": tmp_path / "x_mismatch.vnnlib",
        "y_mismatch": tmp_path / "y_mismatch.vnnlib",
    }
    out["sat"].write_text(spec_text())
    out["safe"].write_text(spec_text(hi=0.5))
    out["empty_onnx"].write_bytes(b"")
    out["truncated_onnx"].write_bytes(data[: len(data) // 2])
    out["undeclared"].write_text(spec_text(out="(<= Y_0 Y_9)"))
    out["x_mismatch"].write_text(spec_text(n_in=3))
    out["y_mismatch"].write_text(spec_text(n_out=1, out="(<= Y_0 0.0)"))
    return out


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_sat_prints_word_and_counterexample(files, capsys) -> None:
    code, out, _ = run(capsys, files["model"], files["sat"], "--timeout", 30)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "sat" and lines[2].startswith("(X_0") and "(Y_1" in out


def test_safe_box_is_proved_by_bounds(files, capsys) -> None:
    code, out, _ = run(capsys, files["model"], files["safe"], "--set", "attack.steps=3")
    assert (code, out) == (0, "unsat\n")


def test_unknown_for_safe_box_without_bounds(files, capsys) -> None:
    args = ("--set", "attack.steps=3", "--set", "bounds.enabled=false")
    code, out, _ = run(capsys, files["model"], files["safe"], *args)
    assert (code, out) == (0, "unknown\n")


def test_results_file(files, capsys, tmp_path: Path) -> None:
    res = tmp_path / "out.txt"
    code, _, _ = run(capsys, files["model"], files["sat"], "--results-file", res, "--seed", 3)
    assert code == 0
    text = res.read_text()
    assert text.startswith("sat\n(\n(X_0") and text.rstrip().endswith(")")
    run(capsys, files["model"], files["safe"], "--results-file", res, "--set", "attack.steps=3")
    assert res.read_text() == "unsat\n"


def test_json_output_shape(files, capsys) -> None:
    code, out, _ = run(capsys, files["model"], files["sat"], "--json")
    assert code == 0
    data = json.loads(out)
    assert set(data) >= {"status", "reason", "timings", "stats", "counterexample", "model", "spec"}
    assert data["status"] == "sat"
    ce = data["counterexample"]
    assert len(ce["x"]) == 2 and len(ce["y"]) == 2 and ce["case_index"] == 0
    assert {"load_s", "attack_s", "total_s"} <= set(data["timings"])
    assert all(isinstance(v, (int, float)) for v in data["timings"].values())
    assert all(isinstance(v, (int, float)) or v is None for v in data["stats"].values())


def test_timeout_flag_is_respected(files, capsys) -> None:
    """A 0.5 s budget stops a 10^7-step attack: ``timeout``, long before the attack would end.

    The elapsed-time bound is the property under test (the deadline is honoured), with
    generous slack for a loaded machine; it is not a speed check.
    """
    start = time.monotonic()
    argv = (files["model"], files["safe"], "--timeout", 0.5, "--set", "attack.steps=10000000")
    argv += ("--set", "attack.time_fraction=1.0")
    code, out, _ = run(capsys, *argv)
    assert (code, out) == (0, "timeout\n")
    assert time.monotonic() - start < 0.5 + DEADLINE_SLACK_S


BAD = {
    "missing model": ("missing.onnx", "sat"),
    "empty onnx": ("empty_onnx", "sat"),
    "truncated onnx": ("truncated_onnx", "sat"),
    "unknown op": ("unknown_op", "sat"),
    "undeclared variable": ("model", "undeclared"),
    "X count mismatch": ("model", "x_mismatch"),
    "Y count mismatch": ("model", "y_mismatch"),
    "missing spec": ("model", "missing.vnnlib"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_exit_2_one_line(files, capsys, tmp_path: Path, case: str) -> None:
    model_key, spec_key = BAD[case]
    model = files.get(model_key, tmp_path / model_key)
    spec = files.get(spec_key, tmp_path / spec_key)
    results = tmp_path / "res.txt"
    code, out, err = run(capsys, model, spec, "--results-file", results)
    assert code == 2
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert results.read_text() == "error\n"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_unavailable_exit_2(files, capsys) -> None:
    code, _, err = run(capsys, files["model"], files["sat"], "--device", "cuda")
    assert code == 2 and err.startswith("error: ") and "CUDA" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "argv", [[], ["only_one_arg.onnx"], ["a.onnx", "b.vnnlib", "--timeout", "soon"]]
)
def test_usage_errors_exit_2_one_line(capsys, argv: list[str]) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1


def test_bad_override_exit_2(files, capsys) -> None:
    code, _, err = run(capsys, files["model"], files["sat"], "--set", "attack.nope=1")
    assert code == 2 and "attack.nope" in err


def test_help_returns_0(capsys) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "check" in out
    code, out, _ = run(capsys, "check", "--help")
    assert code == 0 and "--tolerance" in out


def test_subcommand_registry_shape() -> None:
    sub = cli.SUBCOMMANDS["check"]
    assert callable(sub.configure) and callable(sub.run) and sub.help


def test_verbose_logs_progress_to_stderr(files, capsys) -> None:
    code, out, err = run(capsys, files["model"], files["safe"], "-v", "--set", "attack.steps=2")
    assert code == 0 and out == "unsat\n"


def test_subprocess_bad_input_has_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "verifier.cli",
            str(tmp_path / "x.onnx"),
            str(tmp_path / "y.vnnlib"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- check


def test_check_subcommand_passes_on_linear_model(files, capsys) -> None:
    code, out, _ = run(capsys, "check", files["model"], files["sat"], "--points", 20)
    assert code == 0
    assert "nonlinear ops" in out and "max rel error" in out


def test_check_subcommand_over_tolerance_exit_1(files, capsys) -> None:
    code, out, _ = run(capsys, "check", files["model"], "--points", 5, "--tolerance", -1)
    assert code == 1 and "over tolerance" in out


def test_check_subcommand_spec_mismatch_exit_2(files, capsys) -> None:
    code, _, err = run(capsys, "check", files["model"], files["x_mismatch"])
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1


def test_check_subcommand_bad_model_exit_2(files, capsys) -> None:
    code, _, err = run(capsys, "check", files["truncated_onnx"])
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1


# ------------------------------------------------------------------ zoo / benchmarks


def zoo_pairs() -> list[tuple[Path, Path]]:
    data = REPO / "models" / "zoo_data"
    return [(p, p.with_suffix(".vnnlib")) for p in sorted(data.glob("*.onnx"))]


def test_cli_on_a_zoo_model(capsys) -> None:
    pairs = [(m, s) for m, s in zoo_pairs() if s.is_file()]
    if not pairs:
        pytest.skip("models/zoo_data/*.onnx not generated yet")
    model, spec = pairs[0]
    code, out, err = run(capsys, model, spec, "--timeout", 10, "--json")
    assert code == 0, err
    assert json.loads(out)["status"] in {"sat", "unsat", "unknown", "timeout"}


def test_cli_mnist_sat_instance(benchmarks_dir: Path, capsys, tmp_path: Path) -> None:
    bench = benchmarks_dir / "mnist_fc_2022"
    res = tmp_path / "res.txt"
    code, out, _ = run(
        capsys,
        bench / "onnx" / "mnist-net_256x2.onnx",
        bench / "vnnlib" / "prop_2_0.03.vnnlib",
        "--timeout",
        60,
        "--results-file",
        res,
    )
    assert code == 0 and out.startswith("sat\n")
    assert res.read_text().count("(X_") == 784


def test_method_and_no_bab_flags(files, capsys) -> None:
    for method in ("ibp", "crown", "alpha-crown"):
        code, out, _ = run(capsys, files["model"], files["safe"], "--method", method, "--no-bab")
        assert (code, out) == (0, "unsat\n")
    code, _, err = run(capsys, files["model"], files["safe"], "--method", "nope")
    assert code == 2 and err.startswith("error: ")


def test_bounds_subcommand_prints_rows(files, capsys) -> None:
    code, out, _ = run(capsys, "bounds", files["model"], files["safe"])
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].split()[:3] == ["box", "case", "row"] and len(lines) >= 2
    assert lines[1].split()[-1] == "yes"


def test_lut_subcommand_checks_shipped_tables(capsys) -> None:
    code, out, _ = run(capsys, "lut", "build", "--check", "--ops", "Pow2")
    assert code == 0 and "bit for bit" in out
    code, _, err = run(capsys, "lut")
    assert code == 2 and err.startswith("error: ")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/stat")
def test_process_age_counts_start_up_time() -> None:
    """``process_age`` sees time spent before any of our code ran (the CLI budget uses it)."""
    code = (
        "import time; time.sleep(0.6)\n"
        "from verifier.deadline import Deadline, process_age\n"
        "d = Deadline.since_process_start()\n"
        "print(process_age(), d.elapsed())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    age, elapsed = (float(v) for v in out.stdout.split())
    assert 0.6 <= age < 30.0
    assert elapsed >= 0.6


def test_budget_holds_on_a_large_graph(benchmarks_dir: Path, tmp_path: Path) -> None:
    """A stage that cannot finish in time still ends the process with ``timeout``
    (stages check the deadline between steps; the watchdog covers a step that runs long)."""
    folder = benchmarks_dir / "ml4acopf_2023"
    results = tmp_path / "out.txt"
    cmd = [
        sys.executable,
        "-m",
        "verifier.cli",
        str(folder / "onnx/300_ieee_ml4acopf.onnx"),
        str(folder / "vnnlib/300_ieee_prop4.vnnlib"),
        "--timeout",
        "6",
        "--json",
        "--results-file",
        str(results),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["status"] == "timeout" and data["stop"] == "timeout"
    assert results.read_text().splitlines()[0] == "timeout"


def test_watchdog_answer_carries_the_running_search_statistics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The ``timeout`` written by the watchdog keeps the statistics of the search that was
    running (the run itself never reaches the point where it would report them)."""
    from argparse import Namespace

    from branching import BabStats
    from verifier.deadline import Deadline

    line = cli.ProgressLine(stream=open(tmp_path / "progress.txt", "w"))  # noqa: SIM115
    line(BabStats(rounds=7, domains_bounded=420, max_depth=9, elapsed_s=2.0))
    args = Namespace(results_file=None, json=True, model=Path("m.onnx"), spec=Path("s.vnnlib"))
    answer = cli._Answer(args)
    assert cli._late_answer(answer, Deadline.after(0.0), line)() is True
    data = json.loads(capsys.readouterr().out.strip())
    assert data["status"] == "timeout"
    assert data["stats"]["bab_rounds"] == 7 and data["stats"]["bab_domains"] == 420
    assert data["timings"]["bab_s"] == 2.0 and data["timings"]["total_s"] >= 0.0
    assert cli._late_answer(answer, Deadline.after(0.0), line)() is False  # answered once
    line.stream.close()


def test_progress_line_shows_stabilising_and_a_late_answer_keeps_its_counts(
    tmp_path: Path, capsys
) -> None:
    from argparse import Namespace

    from branching.stabilize import StabilizeStats
    from verifier.deadline import Deadline

    path = tmp_path / "progress.txt"
    with open(path, "w") as stream:
        line = cli.ProgressLine(stream=stream)
        line.stabilizing(
            StabilizeStats(attempted=40, proved=31, tightened=12, domains=900, elapsed_s=3.5)
        )
    text = path.read_text()
    assert (
        "stabilising: 31 of 40 neurons proved stable, 12 interval ends narrowed, 900 domains, "
        "3.5 s" in text
    )
    args = Namespace(results_file=None, json=True, model=Path("m.onnx"), spec=Path("s.vnnlib"))
    assert cli._late_answer(cli._Answer(args), Deadline.after(0.0), line)() is True
    data = json.loads(capsys.readouterr().out.strip())
    assert data["status"] == "timeout"
    assert data["stats"]["stabilize_proved"] == 31
