"""Settings at the edge: --profile, --config and --set on every command; config echoed in JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.verifier.linear_model import spec_text, write_model
from verifier import cli


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    model = write_model(tmp_path / "lin.onnx")
    safe = tmp_path / "safe.vnnlib"
    safe.write_text(spec_text(hi=0.5))
    settings = tmp_path / "s.toml"
    settings.write_text('timeout = 30\n[attack]\nsteps = 4\n[bounds]\nmethod = "crown"\n')
    return {"model": model, "safe": safe, "settings": settings}


def test_verify_json_echoes_effective_config(files, capsys) -> None:
    argv = [files["model"], files["safe"], "--json", "--config", files["settings"]]
    code = cli.main([str(a) for a in [*argv, "--set", "attack.steps=3", "--profile", "vit"]])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["status"] == "unsat"
    cfg = out["config"]
    # precedence: defaults < profile (vit) < --config file < --set
    assert cfg["timeout"] == 30 and cfg["attack"]["steps"] == 3
    assert cfg["bounds"]["method"] == "crown" and cfg["bounds"]["alpha_intermediate"] is False


def test_bounds_json_and_settings(files, capsys) -> None:
    argv = ["bounds", files["model"], files["safe"], "--json", "--set", 'bounds.method="ibp"']
    code = cli.main([str(a) for a in argv])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["config"]["bounds"]["method"] == "ibp"
    assert out["rows"][0]["refuted"] is True and out["rows"][0]["lower"] > out["rows"][0]["d"]


def test_crown_max_elements_setting_reaches_compute_bounds(files, capsys, monkeypatch) -> None:
    import verifier.incomplete as incomplete

    seen = []
    real = incomplete.compute_bounds

    def spy(*args, **kwargs):
        seen.append(kwargs.get("crown_max_elements"))
        return real(*args, **kwargs)

    monkeypatch.setattr(incomplete, "compute_bounds", spy)
    argv = [files["model"], files["safe"], "--json", "--set", "bounds.crown_max_elements=7"]
    code = cli.main([str(a) for a in argv])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["status"] == "unsat"
    assert out["config"]["bounds"]["crown_max_elements"] == 7
    assert seen and set(seen) == {7}


def test_bad_settings_give_one_error_line_everywhere(files, capsys, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[attack\n")
    for argv in (
        [files["model"], files["safe"], "--config", bad],
        ["check", files["model"], "--config", bad],
        ["bounds", files["model"], files["safe"], "--config", bad],
        ["bench", tmp_path, "--config", bad],
        [files["model"], files["safe"], "--set", "attack.nope=1"],
        [files["model"], files["safe"], "--set", "bounds.crown_max_elements=-1"],
        [files["model"], files["safe"], "--profile", "no_such_profile"],
    ):
        code = cli.main([str(a) for a in argv])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    cli.main([str(files["model"]), str(files["safe"]), "--config", str(bad)])
    assert "bad.toml: invalid TOML" in capsys.readouterr().err
