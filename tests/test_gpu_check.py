"""benchmarks/gpu_check.py: the CPU path at tiny sizes runs every task's real model, and one task's failure is its
row's error while the others still run."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from benchmarks import gpu_check


@pytest.fixture(autouse=True)
def one_thread():
    """main() sets torch's thread count; the tests around this one keep theirs."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def rows_of(tmp_path, argv: list[str]) -> tuple[int, dict[str, dict]]:
    out = tmp_path / "rows.json"
    code = gpu_check.main([*argv, "--device", "cpu", "--threads", "1", "--json", str(out)])
    return code, {row["task"]: row for row in json.loads(out.read_text())["rows"]}


def test_every_task_runs_at_tiny_size(tmp_path, capsys) -> None:
    code, rows = rows_of(tmp_path, ["--tiny", "--steps", "1", "--warmup", "1"])
    assert code == 0
    assert list(rows) == [*gpu_check.TASKS, *gpu_check.SKIPPED]
    for name in gpu_check.TASKS:
        row = rows[name]
        assert row["error"] is None, f"{name}: {row['error']}"
        assert row["step_ms"] > 0 and row["samples_per_s"] > 0 and row["params_m"] > 0
        assert row["preset"] == "tiny" and row["precision"] == "fp32" and row["peak_mib"] is None
    assert rows["vlm-caption"]["skipped"] == "skipped: needs the unsloth model"
    table = capsys.readouterr().out
    assert "| task | preset | params (M) | batch | precision | step ms | samples/s | peak GPU MiB | error |" in table
    assert "| vlm-caption | - |" in table and "skipped: needs the unsloth model" in table


def test_a_failing_task_is_its_row_and_the_others_run(tmp_path, monkeypatch) -> None:
    def broken(params, device, batch):
        raise RuntimeError("CUDA out of memory.\nTried to allocate 2 GiB")

    monkeypatch.setitem(gpu_check.TASKS, "vit", dataclasses.replace(gpu_check.TASKS["vit"], build=broken))
    code, rows = rows_of(tmp_path, ["--tiny", "--tasks", "mygo,vit,dip-ddpm", "--steps", "1", "--warmup", "0"])
    assert code == 1
    assert list(rows) == ["mygo", "vit", "dip-ddpm"]
    assert rows["vit"]["error"] == "RuntimeError: CUDA out of memory."  # its first line
    assert rows["vit"]["step_ms"] is None
    for name in ("mygo", "dip-ddpm"):  # before and after the failure
        assert rows[name]["error"] is None and rows[name]["step_ms"] > 0


def test_full_scale_settings_build_the_full_models(tmp_path) -> None:
    """Each task's preset still loads through its own config and builds its model (no step: the sizes are real)."""
    code, rows = rows_of(tmp_path, ["--full", "--steps", "0", "--warmup", "0", "--batch-size", "2"])
    assert code == 0, {name: row["error"] for name, row in rows.items() if row.get("error")}
    assert rows["ddpm"]["preset"] == "full" and round(rows["ddpm"]["params_m"], 1) == 35.7  # presets/ddpm.yaml's U-Net
    assert rows["dynconv"]["preset"] == "real64+real64-wide"
    assert rows["mygo"]["params_m"] > 11  # resnet18, the first member of the README's full-scale ensemble


def test_task_selection() -> None:
    assert gpu_check.select(["twolayer"]) == ["twolayer", "twolayer@resnet34"]
    assert gpu_check.select(["vlm-caption", "news"]) == ["news", "vlm-caption"]
    with pytest.raises(SystemExit, match="unknown task"):
        gpu_check.select(["nope"])


@pytest.mark.slow
def test_compiled_step_runs_and_times_its_compilation_apart() -> None:
    """`--compile`: the step runs through torch.compile; the warm-up (which compiles) is timed apart."""
    rows, info = gpu_check.run(["news"], device="cpu", tiny=True, steps=1, warmup=1, compile=True)
    assert info["compile"] is True and rows[0]["error"] is None
    assert rows[0]["warmup_s"] > 0 and rows[0]["step_ms"] > 0
