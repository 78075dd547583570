"""VNN-COMP harness: scripts, category profiles, prepare cache, witnesses (REFERENCE §4)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.verifier.linear_model import spec_text, write_model
from verifier import ConfigError, InputError, build_config
from verifier.bench.witness import check_witness
from verifier.config import load_profile, profile_names
from verifier.vnncomp import CacheDir, category_profile, prepare_instance, run_instance
from verifier.vnncomp.harness import run_config

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "verifier" / "vnncomp" / "scripts"


def _script_env(cache: Path) -> dict[str, str]:
    import sys

    env = dict(os.environ)
    env["NLVERIFY_PYTHON"] = sys.executable
    env["NLVERIFY_CACHE"] = str(cache)
    return env


def test_categories_map_to_profiles_and_unknown_runs_default() -> None:
    assert category_profile("acasxu_2023") == "acasxu"
    assert category_profile("ACASXU") == "acasxu"
    assert category_profile("vit_2023") == "vit"
    assert category_profile("no_such_benchmark") == "default"
    for name in profile_names():
        load_profile(name)  # every shipped profile is valid and speed-only
    cfg = run_config("vit_2023", 7)
    assert cfg.timeout == 7.0 and cfg.bounds.alpha_intermediate is False
    assert run_config("unknown_cat", 7) == build_config(overrides={"timeout": 7.0})


def test_profile_may_only_tune_speed(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("timeout = 5\n")
    with pytest.raises(ConfigError, match="may only tune speed"):
        load_profile(bad)
    ok = tmp_path / "ok.toml"
    ok.write_text("[attack]\nsteps = 7\n")
    assert build_config(profile=ok).attack.steps == 7
    broken = tmp_path / "broken.toml"
    broken.write_text("[attack\n")
    with pytest.raises(ConfigError, match="broken.toml"):
        build_config(files=[broken])


def test_prepare_caches_and_run_uses_the_cache(tmp_path: Path) -> None:
    model = write_model(tmp_path / "lin.onnx")
    spec = tmp_path / "safe.vnnlib"
    spec.write_text(spec_text(hi=0.5))
    cache = CacheDir(tmp_path / "cache")
    report = prepare_instance(model, spec, cache)
    assert report.graph_file.is_file() and report.cases == 1
    assert any(cache.spec_dir.iterdir())
    graph = cache.read_graph(model)
    assert graph is not None and [n.op for n in graph] == [n.op for n in cache.read_graph(model)]
    out = tmp_path / "res.txt"
    out.write_text("stale")
    result = run_instance("test", model, spec, out, 20, cache=cache)
    assert out.read_text() == "unsat\n" and result.status.word == "unsat"
    with pytest.raises(InputError, match="not found"):
        prepare_instance(tmp_path / "missing.onnx", spec, cache)


def test_run_with_json_prints_the_stop_reason_and_stats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m verifier.vnncomp run ... --json``: one JSON line (what ``verify bench``
    reads for the stop reason and the domain count); the results file is unchanged."""
    import json

    from verifier.vnncomp.__main__ import main

    model = write_model(tmp_path / "lin.onnx")
    spec = tmp_path / "safe.vnnlib"
    spec.write_text(spec_text(hi=0.5))
    out = tmp_path / "res.txt"
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert main([*cache, "run", "test", str(model), str(spec), str(out), "5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert data["status"] == "unsat" and data["stop"] and isinstance(data["stats"], dict)
    assert out.read_text() == "unsat\n"
    assert main([*cache, "run", "test", str(model), str(spec), str(out), "5"]) == 0
    assert capsys.readouterr().out.strip() == "unsat"


def test_run_instance_leaves_the_results_file_to_a_writer_that_answered_first(
    tmp_path: Path,
) -> None:
    """A watchdog that wrote ``timeout`` first keeps its line: the run's late answer
    neither overwrites nor truncates it (bench saw an empty results file)."""
    model = write_model(tmp_path / "lin.onnx")
    spec = tmp_path / "safe.vnnlib"
    spec.write_text(spec_text(hi=0.5))
    out = tmp_path / "res.txt"

    def watchdog_first() -> bool:
        out.write_text("timeout\n")
        return False

    result = run_instance("test", model, spec, out, 20, claim=watchdog_first)
    assert result.status.word == "unsat" and out.read_text() == "timeout\n"
    result = run_instance("test", model, spec, out, 20, claim=lambda: True)
    assert out.read_text() == "unsat\n"


def test_run_instance_bad_input_writes_unknown(tmp_path: Path) -> None:
    model = write_model(tmp_path / "lin.onnx")
    spec = tmp_path / "bad.vnnlib"
    spec.write_text(spec_text(n_in=3))
    out = tmp_path / "res.txt"
    run_instance("test", model, spec, out, 10)
    assert out.read_text() == "unknown\n"


def _first_row(folder: Path, vnnlib_name: str) -> tuple[Path, Path]:
    for line in (folder / "instances.csv").read_text().splitlines():
        onnx, spec, _ = (c.strip() for c in line.split(","))
        if spec.endswith(vnnlib_name) or vnnlib_name in spec:
            return folder / onnx, folder / spec
    raise AssertionError(f"{vnnlib_name} not in {folder}")


@pytest.mark.parametrize(
    ("bench", "onnx_name", "spec_name", "timeout", "expected"),
    [
        ("acasxu_2023", "ACASXU_run2a_2_1_batch_2000.onnx", "prop_2.vnnlib", 60, "sat"),
        ("acasxu_2023", "ACASXU_run2a_2_4_batch_2000.onnx", "prop_3.vnnlib", 60, "unsat"),
        ("vit_2023", "pgd_2_3_16.onnx", "pgd_2_3_16_4021.vnnlib", 3, "timeout"),
    ],
)
def test_run_instance_on_shared_instances(
    benchmarks_dir: Path, tmp_path: Path, bench, onnx_name, spec_name, timeout, expected
) -> None:
    """run_instance on real instances: expected first line, a witness that checks (§4).

    In-process (the scripts' own contract is tested on the zoo model, here and in the
    README test); the sat instance goes through prepare and the cache.
    """
    onnx = benchmarks_dir / bench / "onnx" / onnx_name
    spec = benchmarks_dir / bench / "vnnlib" / spec_name
    cache = CacheDir(tmp_path / "cache") if expected == "sat" else None
    if cache is not None:
        prepare_instance(onnx, spec, cache)
    out = tmp_path / "results.txt"
    run_instance(bench, onnx, spec, out, timeout, cache=cache)
    text = out.read_text()
    assert text.split("\n", 1)[0] == expected
    if expected == "sat":
        check = check_witness(onnx, spec, text.split("\n", 1)[1])
        assert check.valid, check.reason


def test_run_instance_script_always_exits_zero(tmp_path: Path) -> None:
    out = tmp_path / "r.txt"
    env = _script_env(tmp_path / "cache")
    args = [SCRIPTS / "run_instance.sh", "v1", "x", tmp_path / "no.onnx", tmp_path / "no.vnnlib"]
    run = subprocess.run([*args, out, "60"], env=env, capture_output=True)  # bad input: fast
    assert run.returncode == 0 and out.read_text() == "unknown\n"
    wrong_version = subprocess.run([SCRIPTS / "prepare_instance.sh", "v2"], capture_output=True)
    assert wrong_version.returncode != 0


def test_witness_checker_rejects_tampered_witness(tmp_path: Path) -> None:
    from vnnlib import format_counterexample

    model = write_model(tmp_path / "lin.onnx")
    spec = tmp_path / "sat.vnnlib"
    spec.write_text(spec_text())
    x = np.array([1.0, 1.0])  # y = (0.9, 1.0): Y_0 <= Y_1 holds
    y = np.array([0.9, 1.0])
    assert check_witness(model, spec, format_counterexample(x, y)).valid
    assert not check_witness(model, spec, format_counterexample(x, y + 0.5)).valid
    x_out = np.array([0.0, 0.0])  # y = (1.9, 0): no violation
    assert not check_witness(model, spec, format_counterexample(x_out, np.array([1.9, 0.0]))).valid


def test_watchdog_timeout_keeps_the_running_search_statistics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``run --json`` answered by the watchdog still reports how far the search got."""
    import json

    import verifier.vnncomp.__main__ as entry
    from branching import BabStats
    from verifier.deadline import Deadline

    results = tmp_path / "out.txt"
    latest = [BabStats(rounds=3, domains_bounded=96, max_depth=4, elapsed_s=1.0)]
    late = entry._late_answer(results, Deadline.after(0.0), True, latest)
    try:
        assert late() is True
        data = json.loads(capsys.readouterr().out.strip())
        assert data["status"] == "timeout" and data["stop"] == "timeout"
        assert data["stats"]["bab_rounds"] == 3 and data["stats"]["bab_domains"] == 96
        assert data["timings"]["bab_s"] == 1.0 and data["timings"]["total_s"] >= 0.0
        assert results.read_text().splitlines()[0] == "timeout"
        assert late() is False  # one answer only
    finally:
        entry._ANSWERED.release()
