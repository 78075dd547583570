"""``verify bench``: results.csv, resume, scoring, reports; the Ray backend (local, 2 CPUs)."""

from __future__ import annotations

import contextlib
import csv
import io
from pathlib import Path

import pytest

from tests.verifier.linear_model import spec_text, write_model
from verifier import cli
from verifier.bench import BenchOptions, read_results, run_bench
from verifier.bench.instances import Expected, read_instances
from verifier.bench.runner import Row, RunSpec, run_one
from verifier.bench.scoring import CORRECT, WRONG, score_rows


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A benchmark folder: one sat instance, one unsat instance whose expected answer is wrong."""
    bench = tmp_path_factory.mktemp("bench") / "lin_2026"
    (bench / "onnx").mkdir(parents=True)
    (bench / "vnnlib").mkdir()
    write_model(bench / "onnx" / "lin.onnx")
    (bench / "vnnlib" / "sat.vnnlib").write_text(spec_text())
    (bench / "vnnlib" / "safe2.vnnlib").write_text(spec_text(hi=0.4))
    rows = [("onnx/lin.onnx", f"vnnlib/{n}.vnnlib", "60") for n in ("sat", "safe2")]
    with (bench / "instances.csv").open("w", newline="") as fh:
        csv.writer(fh, lineterminator="\r\n").writerows(rows)
    with (bench / "expected.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "onnx",
                "vnnlib",
                "timeout",
                "expected",
                "expected_source",
                "abcrown_result",
                "abcrown_time",
            ]
        )
        w.writerow([*rows[0], "sat", "test", "sat", "1.5"])
        w.writerow([*rows[1], "sat", "deliberately wrong", "unsat", "0.5"])
    return bench


def test_read_instances_tolerates_crlf_and_reports_bad_rows(folder: Path, tmp_path: Path) -> None:
    rows = read_instances(folder)
    assert [r.vnnlib for r in rows] == [
        "vnnlib/sat.vnnlib",
        "vnnlib/safe2.vnnlib",
    ]
    assert rows[0].timeout == 60.0 and rows[0].benchmark == "lin_2026"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "instances.csv").write_text("a.onnx,b.vnnlib\n")
    with pytest.raises(ValueError, match=r"instances.csv:1: expected onnx,vnnlib,timeout"):
        read_instances(bad)


def test_scoring_rules() -> None:
    exp = {
        ("b", "m", s): Expected(e, "", "", None)
        for s, e in (("1", "sat"), ("2", "unsat"), ("3", "unsat"), ("4", "unknown"))
    }
    rows = [
        Row("b", "m", "1", "sat", 1, ""),
        Row("b", "m", "2", "unsat", 1, ""),
        Row("b", "m", "3", "sat", 1, ""),
        Row("b", "m", "4", "timeout", 1, ""),
        Row("b", "m", "1", "sat", 1, ""),
    ]
    checks = iter([(True, "ok"), (True, "ok"), (False, "bad witness")])
    scored = score_rows(rows, exp, lambda row: next(checks))
    assert [s.score for s in scored] == [CORRECT, CORRECT, WRONG, 0, WRONG]
    assert [s.verdict for s in scored] == ["correct", "correct", "wrong", "open", "wrong"]


SETTINGS = ("--set", "attack.steps=5")


@pytest.fixture(scope="module")
def pool_run(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path]:
    """``verify bench FOLDER --jobs 2`` once for the module: (exit code, stdout, out dir)."""
    out = tmp_path_factory.mktemp("pool") / "out"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli.main(["bench", str(folder), "--jobs", "2", "--out", str(out), *SETTINGS])
    return code, buf.getvalue(), out


def test_bench_cli_writes_results_report_and_resumes(folder: Path, pool_run) -> None:
    code, stdout, out = pool_run
    assert code == 1  # the deliberately wrong expected answer counts as a wrong answer
    rows = {r.vnnlib: r for r in read_results(out / "results.csv")}
    assert {k: r.result for k, r in rows.items()} == {
        "vnnlib/sat.vnnlib": "sat",
        "vnnlib/safe2.vnnlib": "unsat",
    }
    report = (out / "report.md").read_text()
    assert report.splitlines()[2].startswith("**WRONG ANSWER: lin_2026 onnx/lin.onnx vnnlib/safe2")
    assert "| lin_2026 | 2 | 1 | 1 | 1 | 1 | -140 |" in report
    assert (out / "report.html").read_text().count("WRONG ANSWER") == 1
    assert (out / "cactus.png").read_bytes()[:4] == b"\x89PNG"
    assert "WRONG ANSWER" in stdout.split("## Totals")[0]
    # resume: nothing is run again, the rows stay
    before = (out / "results.csv").read_text()
    run_bench([folder], BenchOptions(out=out, resume=True))
    assert (out / "results.csv").read_text() == before


def test_hard_timeout_kills_and_gives_a_row(folder: Path, tmp_path: Path, monkeypatch) -> None:
    import verifier.bench.runner as runner

    sleeper = tmp_path / "sleeper.sh"
    sleeper.write_text("#!/bin/sh\nsleep 30\n")
    sleeper.chmod(0o755)
    monkeypatch.setattr(runner, "GRACE_S", 0.5)
    inst = read_instances(folder)[0]
    run = run_one(inst, RunSpec(timeout_scale=0.01, python=str(sleeper)))
    assert run.row.result == "timeout" and run.row.stop_reason.startswith("killed after")


def test_ray_backend_matches_pool_and_survives_a_dead_worker(
    folder: Path, pool_run, tmp_path: Path
) -> None:
    ray = pytest.importorskip("ray")
    pool_out, ray_out = pool_run[2], tmp_path / "ray"
    settings = SETTINGS
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        run_bench([folder], BenchOptions(out=ray_out, backend="ray", jobs=2, settings=settings))
        killer = tmp_path / "kill_parent.sh"  # the instance process kills its Ray worker
        killer.write_text("#!/bin/sh\nkill -9 $PPID\nsleep 5\n")
        killer.chmod(0o755)
        from verifier.bench.runner import run_instances

        rows: list[Row] = []
        run_instances(
            read_instances(folder)[:2],
            RunSpec(python=str(killer)),
            lambda r: rows.append(r.row),
            backend="ray",
            jobs=2,
        )
    finally:
        ray.shutdown()

    def results(path: Path) -> list[tuple[str, str, str, str]]:
        return sorted((r.benchmark, r.onnx, r.vnnlib, r.result) for r in read_results(path))

    assert results(ray_out / "results.csv") == results(pool_out / "results.csv")
    assert len(rows) == 2 and all(r.result == "error" for r in rows)
    assert all(r.stop_reason.startswith("worker died") for r in rows)
