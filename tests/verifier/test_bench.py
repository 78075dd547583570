"""``verify bench``: results.csv, resume, scoring, reports; the Ray backend (local, 2 CPUs);
the development options (timeout cap, row slices, spread samples, threads per job)."""

from __future__ import annotations

import contextlib
import csv
import io
import os
from pathlib import Path

import pytest

from tests.verifier.linear_model import spec_text, write_model
from verifier import bench, cli
from verifier.bench import BenchOptions, read_results, run_bench, usable_cores
from verifier.bench.cli import _Progress
from verifier.bench.instances import Expected, parse_rows, read_instances, select_rows
from verifier.bench.runner import Row, RunSpec, _child_env, _last_json, _row, run_one
from verifier.bench.scoring import CORRECT, WRONG, outcomes, score_rows, totals
from verifier.config import InputError


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
        Row("b", "m", "3", "sat", 1, ""),
    ]
    checks = iter([(True, "ok"), (True, "ok"), (False, "bad witness"), (False, "bad witness")])
    scored = score_rows(rows, exp, lambda row: next(checks))
    # row 3: a checked counterexample refutes the expected unsat (the row is what is wrong)
    assert [s.score for s in scored] == [CORRECT, CORRECT, CORRECT, 0, WRONG, WRONG]
    verdicts = ["correct", "correct", "refutes", "open", "wrong", "wrong"]
    assert [s.verdict for s in scored] == verdicts
    assert totals(scored, "b").solved == 3 and totals(scored, "b").wrong == 2


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


def test_rows_slice_every_and_limit_select_rows(folder: Path) -> None:
    assert parse_rows("0:20") == slice(0, 20)
    assert parse_rows(":3") == slice(None, 3) and parse_rows("5:") == slice(5, None)
    assert parse_rows("2") == slice(2, 3) and parse_rows("-1") == slice(-1, None)
    with pytest.raises(InputError, match="--rows"):
        parse_rows("a:b")
    rows = list(range(10))
    assert select_rows(rows, slice(1, 9), every=3) == [1, 4, 7]
    assert select_rows(rows, slice(1, 9), every=3, limit=2) == [1, 4]
    assert select_rows(rows, None, every=1, limit=None) == rows
    inst = read_instances(folder)[1]
    assert RunSpec(timeout_scale=0.5, timeout_cap=7).timeout_for(inst) == 7
    assert RunSpec(timeout_scale=0.05, timeout_cap=7).timeout_for(inst) == pytest.approx(3)


def test_jobs_share_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "usable_cores", lambda: 8)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert _child_env(BenchOptions(jobs=2).run_spec())["OMP_NUM_THREADS"] == "4"
    assert _child_env(BenchOptions(jobs=3).run_spec())["OMP_NUM_THREADS"] == "2"
    assert _child_env(BenchOptions(jobs=16).run_spec())["OMP_NUM_THREADS"] == "1"
    assert _child_env(BenchOptions(jobs=1).run_spec())["OMP_NUM_THREADS"] == "4"
    assert _child_env(BenchOptions(jobs=2, threads=3).run_spec())["OMP_NUM_THREADS"] == "3"
    assert _child_env(BenchOptions(jobs=2, backend="ray").run_spec())["OMP_NUM_THREADS"] == "1"
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert _child_env(BenchOptions(jobs=1).run_spec())["OMP_NUM_THREADS"] == "8"
    assert 1 <= usable_cores() <= (os.cpu_count() or 1)


def test_row_carries_engine_stop_domains_and_timeout(folder: Path) -> None:
    inst = read_instances(folder)[0]
    data = _last_json('noise\n{"status": "unsat", "stop": "proved", "stats": {"bab_domains": 42}}')
    row = _row(inst, "unsat\n", 0, "", 1.25, 3.0, data)
    assert (row.result, row.stop_reason, row.engine_stop, row.domains) == (
        "unsat",
        "answered",
        "proved",
        42,
    )
    assert row.timeout == 3.0
    assert _last_json("unsat\n") == {} and _last_json("") == {}
    killed = _row(inst, "", None, "", 13.0, 3.0)
    assert (killed.result, killed.engine_stop, killed.domains) == ("timeout", "", 0)
    progress = _Progress([folder])
    progress.total = 2
    progress.add(row)
    line = progress.row_line(row)
    for part in ("lin.onnx sat.vnnlib: unsat (proved) 1.2 s", "expected sat", "ref. sat 1.5 s"):
        assert part in line
    assert "domains 42" in line and line.endswith("remaining 1") and "WRONG" in line
    # A sat on an expected=unsat row: wrong unless its witness checks (then it refutes).
    unsat_inst = next(i for i in read_instances(folder) if i.key != inst.key)
    sat_row = _row(unsat_inst, "sat\n((X_0 0.0))\n", 0, "", 1.0, 3.0)
    for ok, flag, wrong in ((True, "REFUTES EXPECTED", 0), (False, "WRONG", 1)):
        p = _Progress([folder], check=lambda r, ok=ok: (ok, ""))
        p.expected[sat_row.key] = "unsat"
        p.total = 1
        p.add(sat_row)
        assert flag in p.row_line(sat_row) and p.wrong == wrong and p.solved == 1 - wrong


def test_outcomes_count_answers_reference_and_overrun() -> None:
    exp = {
        ("b", "m", "1"): Expected("sat", "", "sat", 2.0),
        ("b", "m", "2"): Expected("unsat", "", "unsat", 3.0),
    }
    rows = [
        Row("b", "m", "1", "timeout", 5.5, "engine timeout", 5.0),
        Row("b", "m", "2", "sat", 1.0, "answered", 5.0),
        Row("b", "m", "3", "error", 0.5, "exit code 1"),
    ]
    o = outcomes(score_rows(rows, exp, lambda row: (False, "bad witness")), "b")
    assert (o.instances, o.sat, o.unsat, o.unknown, o.timeout, o.other, o.wrong) == (
        3,
        1,
        0,
        0,
        1,
        1,
        1,
    )
    assert (o.ref_sat, o.ref_unsat) == (1, 1)
    assert o.seconds == pytest.approx(7.0) and o.max_overrun == pytest.approx(0.5)


def test_cap_rows_every_and_set_reach_every_instance(folder: Path, tmp_path: Path) -> None:
    """``--cap 30 --rows 1: --set ...``: only the second row, run with a 30 s budget (it
    needs well under a second; the margin keeps a loaded machine from timing it out); its
    engine stop reason and domain count reach results.csv and the report; the wrong
    expected answer gives exit status 1."""
    out = tmp_path / "out"
    buf = io.StringIO()
    args = ["bench", str(folder), "--cap", "30", "--rows", "1:", "--every", "1", "--jobs", "2"]
    with contextlib.redirect_stdout(buf):
        code = cli.main([*args, "--out", str(out), *SETTINGS])
    assert code == 1
    (row,) = read_results(out / "results.csv")
    assert (row.vnnlib, row.result, row.timeout) == ("vnnlib/safe2.vnnlib", "unsat", 30.0)
    assert row.engine_stop and row.domains >= 0
    header = (out / "results.csv").read_text().splitlines()[0]
    assert header.endswith("stop_reason,timeout,engine_stop,domains")
    report = (out / "report.md").read_text()
    assert "(timeouts capped at 30 s)" in report.splitlines()[0]
    assert f"| unsat | wrong | -150 | {row.time:.2f} | answered | unsat | 0.50 | 30 | " in report
    assert "| lin_2026 | 1 | 0 | 1 | 0 | 0 | 0 | 1 |" in report  # answers table
    assert "## Answers" in buf.getvalue()
    # a bad --set value is refused before anything runs
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(["bench", str(folder), "--out", str(out), "--set", "nokey"]) == 2
        assert cli.main(["bench", str(folder), "--out", str(out), "--cap", "0"]) == 2
        assert cli.main(["bench", str(folder), "--out", str(out), "--every", "0"]) == 2


def test_resume_upgrades_an_old_results_header(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    old = "benchmark,onnx,vnnlib,result,time,stop_reason\n" + "".join(
        f"lin_2026,onnx/lin.onnx,vnnlib/{n}.vnnlib,unsat,1.0,answered\n" for n in ("sat", "safe2")
    )
    (out / "results.csv").write_text(old)
    outcome = run_bench([folder], BenchOptions(out=out, resume=True))
    assert outcome.skipped == 2
    lines = (out / "results.csv").read_text().splitlines()
    assert lines[0] == ",".join(Row.FIELDS) and len(lines) == 3
    assert [
        (r.result, r.timeout, r.engine_stop, r.domains) for r in read_results(out / "results.csv")
    ] == [("unsat", None, "", 0)] * 2


def test_bench_on_a_shared_row_with_a_cap(benchmarks_dir: Path, tmp_path: Path) -> None:
    """One ACAS Xu row at a 2 s cap: the reference columns of expected.csv reach the report."""
    out = tmp_path / "out"
    folder = benchmarks_dir / "acasxu_2023"
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["bench", str(folder), "--cap", "2", "--rows", "0:1", "--out", str(out)])
    assert code == 0
    (row,) = read_results(out / "results.csv")
    assert row.timeout == 2.0 and row.result in ("unsat", "timeout", "unknown")
    assert row.engine_stop in ("proved", "timeout", "incomplete", "max_domains", "max_depth")
    report = (out / "report.md").read_text()
    assert "| acasxu_2023 | 1 | " in report and "| unsat | 8.19 | 2 | " in report
